// GPU kernels against the fp64 reference (fresh random inputs, outputs poisoned with NaN before
// every run), bitwise repeatability of every deterministic schedule, and forward invariance.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention/attention.hpp"

namespace ga = gfdit::attention;

#define CUDA_OK(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr

namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device"

struct cuda_free {
  void operator()(void* p) const { cudaFree(p); }
};
using dev_ptr = std::unique_ptr<void, cuda_free>;

dev_ptr dev_alloc(std::size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes == 0 ? 1 : bytes) != cudaSuccess) return nullptr;
  return dev_ptr(p);
}

template <class T>
dev_ptr upload(const std::vector<T>& v) {
  auto d = dev_alloc(v.size() * sizeof(T));
  if (d) cudaMemcpy(d.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

template <class T>
std::vector<T> download(const void* d, std::size_t n) {
  std::vector<T> v(n);
  cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return v;
}

void poison(void* d, std::size_t bytes) { cudaMemset(d, 0xFF, bytes); }  // NaN in bf16/fp16/fp32

std::vector<std::uint16_t> random_tensor(const ga::problem& p, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<std::uint16_t> v(p.elements());
  for (auto& x : v) x = ga::from_float(p.type, nd(rng));
  return v;
}

// ||got - ref|| / ||ref||, NaN-propagating (a NaN anywhere gives NaN, which fails any bound).
template <class Get>
double rel_l2(std::size_t n, const float* ref, Get got) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double g = got(i), r = ref[i];
    num += (g - r) * (g - r);
    den += r * r;
  }
  return std::sqrt(num / den);
}

struct gpu_case {
  ga::problem p;
  std::vector<std::int32_t> cu;
  dev_ptr q, k, v, o, lse, dout, dq, dk, dv, ws, cu_dev;
  std::vector<std::uint16_t> hq, hk, hv, hdo;
  std::size_t ws_bytes = 0;

  void init(std::mt19937_64& rng) {
    if (!cu.empty()) p.cu_seqlens = cu;
    const std::size_t bytes = p.elements() * 2;
    hq = random_tensor(p, rng);
    hk = random_tensor(p, rng);
    hv = random_tensor(p, rng);
    hdo = random_tensor(p, rng);
    q = upload(hq);
    k = upload(hk);
    v = upload(hv);
    dout = upload(hdo);
    o = dev_alloc(bytes);
    dq = dev_alloc(bytes);
    dk = dev_alloc(bytes);
    dv = dev_alloc(bytes);
    lse = dev_alloc(p.rows() * 4);
    ws_bytes = ga::backward_workspace_bytes(p);
    ws = dev_alloc(ws_bytes);
    if (!cu.empty()) cu_dev = upload(cu);
  }
  ga::forward_args fwd() const {
    return {q.get(),
            k.get(),
            v.get(),
            o.get(),
            static_cast<float*>(lse.get()),
            static_cast<const std::int32_t*>(cu_dev.get())};
  }
  ga::backward_args bwd(ga::schedule s) const {
    ga::backward_args a;
    a.q = q.get();
    a.k = k.get();
    a.v = v.get();
    a.o = o.get();
    a.dout = dout.get();
    a.lse = static_cast<const float*>(lse.get());
    a.dq = dq.get();
    a.dk = dk.get();
    a.dv = dv.get();
    a.cu_seqlens = static_cast<const std::int32_t*>(cu_dev.get());
    a.sched = s;
    a.workspace = ws.get();
    a.workspace_bytes = ws_bytes;
    return a;
  }
};

struct config {
  ga::dtype type;
  int head_dim;
  ga::mask_kind mask;
  bool varlen;
};

std::string name(const config& c) {
  return std::string(c.type == ga::dtype::bf16 ? "bf16" : "fp16") + "_d" + std::to_string(c.head_dim) +
         (c.mask == ga::mask_kind::causal ? "_causal" : "_full") + (c.varlen ? "_varlen" : "_padded");
}

std::vector<config> all_configs() {
  std::vector<config> out;
  for (auto t : {ga::dtype::bf16, ga::dtype::fp16})
    for (int d : {64, 128})
      for (auto m : {ga::mask_kind::full, ga::mask_kind::causal})
        for (bool vl : {false, true}) out.push_back({t, d, m, vl});
  return out;
}

void make_problem(const config& c, gpu_case& g) {
  g.p.type = c.type;
  g.p.head_dim = c.head_dim;
  g.p.mask = c.mask;
  g.p.heads = 2;
  if (c.varlen) {
    g.p.batch = 3;
    g.cu = {0, 70, 263, 300};  // lengths 70, 193, 37: partial tiles everywhere
  } else {
    g.p.batch = 2;
    g.p.seqlen = 193;
  }
}

class GpuAttention : public ::testing::TestWithParam<config> {};

TEST_P(GpuAttention, ForwardAndEveryScheduleMatchReference) {
  REQUIRE_GPU();
  const config c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  gpu_case g;
  make_problem(c, g);
  g.init(rng);
  const std::size_t n = g.p.elements();
  std::vector<float> ro(n), rl(g.p.rows()), rdq(n), rdk(n), rdv(n);
  ASSERT_TRUE(ga::reference_forward(g.p, g.hq.data(), g.hk.data(), g.hv.data(), ro.data(), rl.data()).ok());
  ASSERT_TRUE(ga::reference_backward(g.p, g.hq.data(), g.hk.data(), g.hv.data(), g.hdo.data(), rdq.data(), rdk.data(),
                                     rdv.data())
                  .ok());
  poison(g.o.get(), n * 2);
  poison(g.lse.get(), g.p.rows() * 4);
  auto r = ga::forward(g.p, g.fwd());
  ASSERT_TRUE(r.ok()) << r.err().what;
  CUDA_OK(cudaDeviceSynchronize());
  auto o = download<std::uint16_t>(g.o.get(), n);
  auto lse = download<float>(g.lse.get(), g.p.rows());
  const double eo = rel_l2(n, ro.data(), [&](std::size_t i) { return ga::to_float(c.type, o[i]); });
  const double el = rel_l2(lse.size(), rl.data(), [&](std::size_t i) { return lse[i]; });
  EXPECT_LE(eo, 1e-2) << "O";
  EXPECT_LE(el, 1e-3) << "LSE";
  for (ga::schedule s : ga::all_schedules) {
    if (!ga::schedule_supports(s, c.mask)) {
      EXPECT_FALSE(ga::backward(g.p, g.bwd(s)).ok());
      continue;
    }
    SCOPED_TRACE(std::string(ga::to_string(s)));
    poison(g.dq.get(), n * 2);
    poison(g.dk.get(), n * 2);
    poison(g.dv.get(), n * 2);
    poison(g.ws.get(), g.ws_bytes);
    auto rb = ga::backward(g.p, g.bwd(s));
    ASSERT_TRUE(rb.ok()) << rb.err().what;
    CUDA_OK(cudaDeviceSynchronize());
    for (auto [dptr, ref, what] :
         {std::tuple{g.dq.get(), &rdq, "dQ"}, std::tuple{g.dk.get(), &rdk, "dK"}, std::tuple{g.dv.get(), &rdv, "dV"}}) {
      auto got = download<std::uint16_t>(dptr, n);
      const double e = rel_l2(n, ref->data(), [&](std::size_t i) { return ga::to_float(c.type, got[i]); });
      EXPECT_LE(e, 1e-2) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, GpuAttention, ::testing::ValuesIn(all_configs()),
                         [](const auto& info) { return name(info.param); });

// 100 backward runs per deterministic schedule on a shape with more KV tiles than resident blocks
// (several waves, heads split across waves): dQ, dK and dV must repeat bit for bit.
class GpuDeterminism : public ::testing::TestWithParam<std::tuple<ga::mask_kind, bool>> {};

TEST_P(GpuDeterminism, HundredBackwardRunsAreBitwiseIdentical) {
  REQUIRE_GPU();
  const auto [mask, varlen] = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  gpu_case g;
  g.p.type = ga::dtype::bf16;
  g.p.head_dim = 128;
  g.p.mask = mask;
  g.p.heads = 16;
  if (varlen) {
    g.p.batch = 4;
    g.cu = {0, 1000, 1777, 3800, 4100};
  } else {
    g.p.batch = 2;
    g.p.seqlen = 1000;
  }
  g.init(rng);
  const std::size_t n = g.p.elements();
  ASSERT_TRUE(ga::forward(g.p, g.fwd()).ok());
  CUDA_OK(cudaDeviceSynchronize());
  for (ga::schedule s : ga::all_schedules) {
    if (!ga::is_deterministic(s) || !ga::schedule_supports(s, mask)) continue;
    SCOPED_TRACE(std::string(ga::to_string(s)));
    std::vector<std::uint16_t> first[3];
    int mismatches = 0;
    for (int run = 0; run < 100; ++run) {
      poison(g.dq.get(), n * 2);
      poison(g.dk.get(), n * 2);
      poison(g.dv.get(), n * 2);
      auto r = ga::backward(g.p, g.bwd(s));
      ASSERT_TRUE(r.ok()) << r.err().what;
      CUDA_OK(cudaDeviceSynchronize());
      const void* outs[3] = {g.dq.get(), g.dk.get(), g.dv.get()};
      for (int t = 0; t < 3; ++t) {
        auto got = download<std::uint16_t>(outs[t], n);
        if (run == 0) {
          first[t] = std::move(got);
          for (auto x : first[t]) ASSERT_FALSE(std::isnan(ga::bf16_to_float(x))) << "unwritten output";
        } else if (std::memcmp(got.data(), first[t].data(), n * 2) != 0) {
          ++mismatches;
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuDeterminism,
                         ::testing::Combine(::testing::Values(ga::mask_kind::full, ga::mask_kind::causal),
                                            ::testing::Bool()));

// A head computed alone and inside a batch of heads gives the same bits (no split-KV).
TEST(GpuAttentionInvariance, HeadAloneEqualsHeadInsideBatch) {
  REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  for (auto mask : {ga::mask_kind::full, ga::mask_kind::causal}) {
    for (int d : {64, 128}) {
      gpu_case big;
      big.p.batch = 3;
      big.p.heads = 8;
      big.p.seqlen = 777;
      big.p.head_dim = d;
      big.p.mask = mask;
      big.init(rng);
      ASSERT_TRUE(ga::forward(big.p, big.fwd()).ok());
      CUDA_OK(cudaDeviceSynchronize());
      auto o_big = download<std::uint16_t>(big.o.get(), big.p.elements());
      auto l_big = download<float>(big.lse.get(), big.p.rows());
      const int b = 1, h = 5, S = big.p.seqlen;
      // The same head packed as a one-head varlen sequence between two others: [token, head, dim].
      ga::problem one;
      one.batch = 1;
      one.heads = 1;
      one.seqlen = S;
      one.head_dim = d;
      one.mask = mask;
      const std::size_t m = one.elements();
      auto slice = [&](const std::vector<std::uint16_t>& src) {
        return std::vector<std::uint16_t>(src.begin() + big.p.row_offset(b, h, 0),
                                          src.begin() + big.p.row_offset(b, h, 0) + m);
      };
      auto q = upload(slice(big.hq)), k = upload(slice(big.hk)), v = upload(slice(big.hv));
      auto o = dev_alloc(m * 2), lse = dev_alloc(S * 4);
      poison(o.get(), m * 2);
      ASSERT_TRUE(ga::forward(one, {q.get(), k.get(), v.get(), o.get(), static_cast<float*>(lse.get()), nullptr}).ok());
      CUDA_OK(cudaDeviceSynchronize());
      auto o_one = download<std::uint16_t>(o.get(), m);
      auto l_one = download<float>(lse.get(), S);
      EXPECT_EQ(o_one, slice(o_big)) << "d=" << d;
      EXPECT_EQ(0, std::memcmp(l_one.data(), l_big.data() + big.p.lse_offset(b, h, 0), S * 4));
    }
  }
}

// Computing the (batch, head) pairs in ranges, with 128-row blocks, 64-row blocks, or 128-row
// blocks and a 64-row last partial wave, gives the bits of one call with 128-row blocks; a range
// leaves the other pairs' rows untouched. Shapes: one partial wave, and whole waves plus a tail
// (both kernels in one call), padded and varlen.
TEST(GpuAttentionInvariance, PairRangesAndTailBlocksKeepTheBits) {
  REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  struct shape {
    int batch, heads, seqlen;
    std::vector<std::int32_t> cu;
  };
  const std::vector<shape> shapes = {{1, 3, 777, {}}, {2, 40, 777, {}}, {3, 24, 0, {0, 700, 1100, 2000}}};
  for (const auto& sh : shapes)
    for (auto mask : {ga::mask_kind::full, ga::mask_kind::causal})
      for (int d : {64, 128}) {
        gpu_case g;
        g.p.batch = sh.batch;
        g.p.heads = sh.heads;
        g.p.seqlen = sh.seqlen;
        g.p.head_dim = d;
        g.p.mask = mask;
        g.cu = sh.cu;
        g.init(rng);
        const std::string where = "batch " + std::to_string(sh.batch) + " heads " + std::to_string(sh.heads) + " d " +
                                  std::to_string(d) + (mask == ga::mask_kind::causal ? " causal" : " full");
        const std::size_t ob = g.p.elements() * 2, lb = g.p.rows() * 4;
        auto run = [&](std::vector<std::pair<int, int>> ranges, bool split, int rows = 0) {
          poison(g.o.get(), ob);
          poison(g.lse.get(), lb);
          for (auto [b, e] : ranges) {
            auto a = g.fwd();
            a.pair_begin = b;
            a.pair_end = e;
            a.split_tail = split;
            a.block_rows = rows;
            EXPECT_TRUE(ga::forward(g.p, a).ok()) << where;
          }
          EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
          return std::make_pair(download<std::uint16_t>(g.o.get(), g.p.elements()),
                                download<float>(g.lse.get(), g.p.rows()));
        };
        const int pairs = sh.batch * sh.heads, lead = ga::forward_whole_wave_pairs(g.p);
        ASSERT_GE(lead, 0);
        ASSERT_LE(lead, pairs);
        const auto whole = run({{0, -1}}, false, 128);
        for (float x : whole.second) ASSERT_TRUE(std::isfinite(x)) << where;  // every row written
        EXPECT_TRUE(whole == run({{0, -1}}, true, 128)) << where << ": 128-row blocks, 64-row tail";
        EXPECT_TRUE(whole == run({{0, -1}}, false, 64)) << where << ": every block one warpgroup";
        EXPECT_TRUE(whole == run({{0, -1}}, true)) << where << ": the default";
        for (int rows : {0, 128}) {
          EXPECT_TRUE(whole == run({{0, lead}, {lead, pairs}}, true, rows)) << where << " lead " << lead;
          EXPECT_TRUE(whole == run({{pairs / 2, pairs}, {0, 1}, {1, pairs / 2}}, true, rows)) << where;
        }
        // Pairs outside the range keep the poison (0xFFFF): pair 1 is sample 0's head 1.
        const auto some = run({{1, 2}}, true);
        std::int64_t written = 0;
        for (auto x : some.first) written += x != 0xFFFF;
        EXPECT_EQ(written, std::int64_t(g.p.seq_len(0)) * d) << where;
      }
}

TEST(GpuAttentionInvariance, RejectsPairsOutsideTheProblemAndOtherBlockRows) {
  REQUIRE_GPU();
  std::mt19937_64 rng(1);
  gpu_case g;
  g.p.batch = 2;
  g.p.heads = 3;
  g.p.seqlen = 64;
  g.p.head_dim = 64;
  g.init(rng);
  for (auto [b, e] : {std::pair{-1, 2}, {0, 7}, {4, 3}, {7, -1}, {0, -2}}) {
    auto a = g.fwd();
    a.pair_begin = b;
    a.pair_end = e;
    const auto r = ga::forward(g.p, a);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().what.find("outside [0, 6)"), std::string::npos) << r.err().what;
  }
  auto a = g.fwd();
  a.block_rows = 96;
  const auto r = ga::forward(g.p, a);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().what.find("block_rows 96"), std::string::npos) << r.err().what;
}

TEST(GpuAttentionInvariance, RejectsSmallWorkspace) {
  REQUIRE_GPU();
  std::mt19937_64 rng(1);
  gpu_case g;
  g.p.seqlen = 64;
  g.p.head_dim = 64;
  g.init(rng);
  auto a = g.bwd(ga::schedule::ascending);
  a.workspace_bytes = 16;
  EXPECT_FALSE(ga::backward(g.p, a).ok());
}

}  // namespace
