// The fp64 CPU reference is the yardstick for the GPU kernels, so it is checked on its own:
// gradients against finite differences, masks and packing against independent formulations.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/attention/attention.hpp"

namespace ga = gfdit::attention;

namespace {

std::vector<double> randn(std::size_t n, std::mt19937_64& rng) {
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double loss(const ga::problem& p, const std::vector<double>& q, const std::vector<double>& k,
            const std::vector<double>& v, const std::vector<double>& w) {
  std::vector<double> o(q.size());
  EXPECT_TRUE(ga::reference_forward_f64(p, q.data(), k.data(), v.data(), o.data(), nullptr).ok());
  double l = 0;
  for (std::size_t i = 0; i < o.size(); ++i) l += o[i] * w[i];
  return l;
}

}  // namespace

TEST(AttentionReference, Bf16AndFp16ConversionsRoundTrip) {
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f16 = ga::fp16_to_float(h);
    if (!std::isnan(f16)) {
      ASSERT_EQ(ga::float_to_fp16(f16), h) << "fp16 bits " << bits;
    }
    const float b16 = ga::bf16_to_float(h);
    if (!std::isnan(b16)) {
      ASSERT_EQ(ga::float_to_bf16(b16), h) << "bf16 bits " << bits;
    }
  }
  EXPECT_EQ(ga::float_to_bf16(1.00390625f), 0x3F80);  // halfway: ties to even
  EXPECT_EQ(ga::float_to_bf16(1.01171875f), 0x3F82);
  EXPECT_EQ(ga::float_to_fp16(1.0f + 1.0f / 2048), 0x3C00);
  EXPECT_EQ(ga::float_to_fp16(65520.0f), 0x7C00);
  EXPECT_TRUE(std::isnan(ga::bf16_to_float(0xFFFF)));
  EXPECT_TRUE(std::isnan(ga::fp16_to_float(0xFFFF)));
}

TEST(AttentionReference, RejectsBadShapes) {
  ga::problem p;
  p.seqlen = 16;
  p.head_dim = 96;
  EXPECT_FALSE(ga::validate(p).ok());
  p.head_dim = 64;
  EXPECT_TRUE(ga::validate(p).ok());
  p.seqlen = 0;
  EXPECT_FALSE(ga::validate(p).ok());
  std::vector<std::int32_t> cu{0, 5, 5};
  p.batch = 2;
  p.cu_seqlens = cu;
  EXPECT_FALSE(ga::validate(p).ok());
  cu = {1, 5, 9};
  EXPECT_FALSE(ga::validate(p).ok());
  cu = {0, 5, 9};
  EXPECT_TRUE(ga::validate(p).ok());
  std::vector<std::int32_t> short_cu{0, 5};
  p.cu_seqlens = short_cu;
  EXPECT_FALSE(ga::validate(p).ok());
  EXPECT_FALSE(ga::schedule_supports(ga::schedule::shift, ga::mask_kind::causal));
  EXPECT_TRUE(ga::schedule_supports(ga::schedule::spt, ga::mask_kind::causal));
  EXPECT_TRUE(ga::parse_schedule("descending").ok());
  EXPECT_FALSE(ga::parse_schedule("sideways").ok());
}

class ReferenceByMask : public ::testing::TestWithParam<ga::mask_kind> {};

TEST_P(ReferenceByMask, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(std::random_device{}());
  ga::problem p;
  p.batch = 1;
  p.heads = 2;
  p.seqlen = 5;
  p.head_dim = 64;
  p.mask = GetParam();
  const std::size_t n = p.elements();
  auto q = randn(n, rng), k = randn(n, rng), v = randn(n, rng), w = randn(n, rng);
  std::vector<double> dq(n), dk(n), dv(n);
  ASSERT_TRUE(
      ga::reference_backward_f64(p, q.data(), k.data(), v.data(), w.data(), dq.data(), dk.data(), dv.data()).ok());
  const double eps = 1e-5;
  double worst = 0;
  for (auto [x, g] : {std::pair{&q, &dq}, std::pair{&k, &dk}, std::pair{&v, &dv}}) {
    for (std::size_t i = 0; i < n; ++i) {
      const double keep = (*x)[i];
      (*x)[i] = keep + eps;
      const double up = loss(p, q, k, v, w);
      (*x)[i] = keep - eps;
      const double down = loss(p, q, k, v, w);
      (*x)[i] = keep;
      const double fd = (up - down) / (2 * eps);
      worst = std::max(worst, std::fabs(fd - (*g)[i]) / (1.0 + std::fabs(fd)));
    }
  }
  EXPECT_LT(worst, 1e-7);
  // Under the causal mask, the last key receives gradient only from the last query.
  if (p.mask == ga::mask_kind::causal) {
    double nonzero = 0;
    for (double x : dk) nonzero += std::fabs(x);
    EXPECT_GT(nonzero, 0);
  }
}

TEST_P(ReferenceByMask, VarlenEqualsSeparateSequencesBitwise) {
  std::mt19937_64 rng(std::random_device{}());
  const std::vector<std::int32_t> cu{0, 3, 10, 15};
  ga::problem packed;
  packed.batch = 3;
  packed.heads = 2;
  packed.head_dim = 64;
  packed.mask = GetParam();
  packed.cu_seqlens = cu;
  const std::size_t n = packed.elements();
  auto q = randn(n, rng), k = randn(n, rng), v = randn(n, rng), w = randn(n, rng);
  std::vector<double> o(n), lse(packed.rows()), dq(n), dk(n), dv(n);
  ASSERT_TRUE(ga::reference_forward_f64(packed, q.data(), k.data(), v.data(), o.data(), lse.data()).ok());
  ASSERT_TRUE(
      ga::reference_backward_f64(packed, q.data(), k.data(), v.data(), w.data(), dq.data(), dk.data(), dv.data()).ok());
  for (int b = 0; b < packed.batch; ++b) {
    ga::problem one = packed;
    one.batch = 1;
    one.cu_seqlens = {};
    one.seqlen = packed.seq_len(b);
    const std::size_t m = one.elements();
    // Gather sequence b from [token, head, dim] into [1, head, seq, dim].
    auto gather = [&](const std::vector<double>& src) {
      std::vector<double> out(m);
      for (int h = 0; h < one.heads; ++h)
        for (int s = 0; s < one.seqlen; ++s)
          for (int x = 0; x < one.head_dim; ++x) out[one.row_offset(0, h, s) + x] = src[packed.row_offset(b, h, s) + x];
      return out;
    };
    auto q1 = gather(q), k1 = gather(k), v1 = gather(v), w1 = gather(w);
    std::vector<double> o1(m), lse1(one.rows()), dq1(m), dk1(m), dv1(m);
    ASSERT_TRUE(ga::reference_forward_f64(one, q1.data(), k1.data(), v1.data(), o1.data(), lse1.data()).ok());
    ASSERT_TRUE(
        ga::reference_backward_f64(one, q1.data(), k1.data(), v1.data(), w1.data(), dq1.data(), dk1.data(), dv1.data())
            .ok());
    EXPECT_EQ(gather(o), o1);
    EXPECT_EQ(gather(dq), dq1);
    EXPECT_EQ(gather(dk), dk1);
    EXPECT_EQ(gather(dv), dv1);
    for (int h = 0; h < one.heads; ++h)
      for (int s = 0; s < one.seqlen; ++s) EXPECT_EQ(lse[packed.lse_offset(b, h, s)], lse1[one.lse_offset(0, h, s)]);
  }
}

INSTANTIATE_TEST_SUITE_P(Masks, ReferenceByMask, ::testing::Values(ga::mask_kind::full, ga::mask_kind::causal));

TEST(AttentionReference, CausalRowEqualsFullAttentionOverItsPrefix) {
  std::mt19937_64 rng(std::random_device{}());
  ga::problem causal;
  causal.heads = 1;
  causal.seqlen = 9;
  causal.head_dim = 64;
  causal.mask = ga::mask_kind::causal;
  const std::size_t n = causal.elements();
  auto q = randn(n, rng), k = randn(n, rng), v = randn(n, rng);
  std::vector<double> o(n), lse(causal.rows());
  ASSERT_TRUE(ga::reference_forward_f64(causal, q.data(), k.data(), v.data(), o.data(), lse.data()).ok());
  for (int i = 0; i < causal.seqlen; ++i) {
    ga::problem full = causal;
    full.mask = ga::mask_kind::full;
    full.seqlen = i + 1;
    const std::size_t m = full.elements();
    std::vector<double> qf(q.begin(), q.begin() + m), kf(k.begin(), k.begin() + m), vf(v.begin(), v.begin() + m), of(m),
        lf(full.rows());
    ASSERT_TRUE(ga::reference_forward_f64(full, qf.data(), kf.data(), vf.data(), of.data(), lf.data()).ok());
    for (int x = 0; x < 64; ++x) EXPECT_EQ(o[i * 64 + x], of[i * 64 + x]) << "row " << i;
    EXPECT_EQ(lse[i], lf[i]);
  }
  // Row 0 attends to key 0 alone: its output is V[0] exactly.
  for (int x = 0; x < 64; ++x) EXPECT_DOUBLE_EQ(o[x], v[x]);
}

TEST(AttentionReference, Bf16EntryPointMatchesF64OnRoundedInputs) {
  std::mt19937_64 rng(std::random_device{}());
  ga::problem p;
  p.heads = 2;
  p.seqlen = 7;
  p.head_dim = 128;
  p.mask = ga::mask_kind::causal;
  const std::size_t n = p.elements();
  std::vector<std::uint16_t> q(n), k(n), v(n);
  std::vector<double> qd(n), kd(n), vd(n);
  auto rq = randn(n, rng), rk = randn(n, rng), rv = randn(n, rng);
  for (std::size_t i = 0; i < n; ++i) {
    q[i] = ga::float_to_bf16(float(rq[i]));
    k[i] = ga::float_to_bf16(float(rk[i]));
    v[i] = ga::float_to_bf16(float(rv[i]));
    qd[i] = ga::bf16_to_float(q[i]);
    kd[i] = ga::bf16_to_float(k[i]);
    vd[i] = ga::bf16_to_float(v[i]);
  }
  std::vector<float> o(n), lse(p.rows());
  std::vector<double> od(n), lsed(p.rows());
  ASSERT_TRUE(ga::reference_forward(p, q.data(), k.data(), v.data(), o.data(), lse.data()).ok());
  ASSERT_TRUE(ga::reference_forward_f64(p, qd.data(), kd.data(), vd.data(), od.data(), lsed.data()).ok());
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(o[i], float(od[i]));
}
