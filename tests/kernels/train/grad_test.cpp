// Every op's backward and the whole DiT's loss gradient against central finite differences, in
// double, on a small config; and the training forward against the serving forward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "kernels/dit/forward.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/train/dit_grad.hpp"
#include "kernels/train/ops.hpp"

namespace gfdit::train {
namespace {

using vecd = std::vector<double>;

vecd seeded(std::size_t n, std::uint64_t stream, double scale) {
  vecd v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * (2.0 * dit::counter_uniform(stream, i) - 1.0);
  return v;
}

// Checks d(loss)/d(x[i]) for every i of `x` against (loss(x + h) - loss(x - h)) / 2h.
void expect_grad(const std::function<double()>& loss, vecd& x, const vecd& grad, const char* what, double tol = 1e-6) {
  ASSERT_EQ(x.size(), grad.size());
  const double h = 1e-5;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(grad[i], fd, tol * (1.0 + std::abs(fd))) << what << " element " << i;
  }
}

// A weighted sum of the op's output: its gradient with respect to the output is `r`.
double weighted(const vecd& y, const vecd& r) {
  double s = 0;
  for (std::size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
  return s;
}

TEST(TrainOps, LinearBackwardMatchesFiniteDifferences) {
  const int rows = 3, in = 11, out = 5;
  vecd w = seeded(out * in, 1, 0.5), b = seeded(out, 2, 0.5), x = seeded(rows * in, 3, 1.0),
       r = seeded(rows * out, 4, 1);
  auto loss = [&] {
    vecd y(rows * out);
    linear_forward(w.data(), b.data(), x.data(), rows, in, out, y.data());
    return weighted(y, r);
  };
  vecd dx(x.size(), 0), dw(w.size(), 0), db(b.size(), 0);
  linear_backward(w.data(), x.data(), r.data(), rows, in, out, dx.data(), dw.data(), db.data());
  expect_grad(loss, x, dx, "dx");
  expect_grad(loss, w, dw, "dw");
  expect_grad(loss, b, db, "db");
}

TEST(TrainOps, ModulatedNormBackwardMatchesFiniteDifferences) {
  const int h = 13;
  vecd x = seeded(h, 5, 2.0), shift = seeded(h, 6, 0.5), scale = seeded(h, 7, 0.5), r = seeded(h, 8, 1.0);
  vecd y(h), xhat(h);
  double rstd = 0;
  auto loss = [&] {
    modulated_norm_forward(x.data(), h, shift.data(), scale.data(), y.data(), xhat.data(), &rstd);
    return weighted(y, r);
  };
  loss();
  vecd dx(h, 0), dshift(h, 0), dscale(h, 0);
  modulated_norm_backward(r.data(), h, scale.data(), xhat.data(), rstd, dx.data(), dshift.data(), dscale.data());
  expect_grad(loss, x, dx, "dx");
  expect_grad(loss, shift, dshift, "dshift");
  expect_grad(loss, scale, dscale, "dscale");
}

TEST(TrainOps, GeluAndSiluDerivativesMatchFiniteDifferences) {
  for (double x : {-4.0, -1.3, -0.2, 0.0, 0.4, 1.7, 5.0}) {
    const double h = 1e-6;
    EXPECT_NEAR(gelu_tanh_grad(x), (dit::gelu_tanh(x + h) - dit::gelu_tanh(x - h)) / (2 * h), 1e-8) << x;
    EXPECT_NEAR(silu_grad(x), (dit::silu(x + h) - dit::silu(x - h)) / (2 * h), 1e-8) << x;
  }
}

TEST(TrainOps, AttentionBackwardMatchesFiniteDifferences) {
  const int n = 5, d = 4, stride = 3 * d + 2, ostride = d + 1;  // strides wider than a head, as in the model
  vecd qkv = seeded(n * stride, 9, 1.5), r = seeded(n * ostride, 10, 1.0);
  for (int i = 0; i < n; ++i) r[i * ostride + d] = 0;  // the column past the head is not an output
  vecd o(n * ostride, 0), p(n * n);
  auto loss = [&] {
    attention_forward(&qkv[0], &qkv[d], &qkv[2 * d], n, d, stride, o.data(), ostride, p.data());
    return weighted(o, r);
  };
  loss();
  vecd dqkv(qkv.size(), 0), ds(n);
  attention_backward(&qkv[0], &qkv[d], &qkv[2 * d], p.data(), r.data(), n, d, stride, ostride, &dqkv[0], &dqkv[d],
                     &dqkv[2 * d], ds.data());
  expect_grad(loss, qkv, dqkv, "dqkv");
}

dit::model_config small_config() {
  dit::model_config c;
  c.name = "train-small";
  c.hidden = 32, c.depth = 2, c.heads = 2, c.mlp_ratio = 2, c.latent_channels = 1;
  c.patch_h = c.patch_w = 2, c.height = c.width = 8, c.num_classes = 3;
  return c;
}

TEST(TrainModel, LossGradientMatchesFiniteDifferencesForEveryTensor) {
  auto L = param_layout::of(small_config());
  ASSERT_TRUE(L) << L.err().what;
  vecd params = seeded(static_cast<std::size_t>(L->total), 11, 0.3);
  const std::size_t n = static_cast<std::size_t>(L->config.image_tokens() * L->config.patch_dim());
  const vecd xt = seeded(n, 12, 1.0), target = seeded(n, 13, 1.0);
  for (int label : {1, 3}) {  // a class and the null class
    const flow_sample<double> s{xt, target, 370.0, label};
    vecd grad(params.size(), 0.0);
    const double l0 = loss_and_grad<double>(*L, params, s, grad);
    EXPECT_GT(l0, 0.0);
    // A few elements of every tensor (first, middle, last): each op's gradient is reached.
    for (std::size_t t = 0; t < L->specs.size(); ++t) {
      const std::int64_t off = L->offset[t], cnt = L->specs[t].numel();
      for (std::int64_t e : {std::int64_t{0}, cnt / 2, cnt - 1}) {
        const std::size_t i = static_cast<std::size_t>(off + e);
        const double keep = params[i], h = 1e-5;
        vecd scratch(params.size());
        params[i] = keep + h;
        const double up = loss_and_grad<double>(*L, params, s, scratch);
        params[i] = keep - h;
        const double down = loss_and_grad<double>(*L, params, s, scratch);
        params[i] = keep;
        const double fd = (up - down) / (2 * h);
        EXPECT_NEAR(grad[i], fd, 1e-6 * (1 + std::abs(fd)))
            << L->specs[t].name << " element " << e << " label " << label;
      }
    }
    // The unused class rows get nothing.
    const std::int64_t table = L->at("y_embed.table");
    for (int row = 0; row <= 3; ++row) {
      if (row == label) continue;
      for (int i = 0; i < 32; ++i) EXPECT_EQ(grad[static_cast<std::size_t>(table + row * 32 + i)], 0.0);
    }
  }
}

TEST(TrainModel, ForwardIsTheServingForwardWithoutItsBf16Rounding) {
  const auto c = small_config();
  auto m = dit::model::generate(c, 5);
  ASSERT_TRUE(m);
  auto L = param_layout::of(c);
  ASSERT_TRUE(L);
  std::vector<float> params;
  for (const auto& s : L->specs) {
    const auto& t = m->tensors().at(s.name);
    for (auto b : t) params.push_back(dit::from_bf16(b));
  }
  const std::size_t n = static_cast<std::size_t>(c.image_tokens() * c.patch_dim());
  std::vector<float> xt(n);
  for (std::size_t i = 0; i < n; ++i) xt[i] = dit::counter_normal(3, i);
  const float t = 420.0f;
  const int label = 2;
  const auto v = velocity<float>(*L, params, xt, t, label);
  auto ref = dit::forward_cpu(*m, dit::forward_input{1, xt, {&t, 1}, {&label, 1}, {}}, dit::sp_group{});
  ASSERT_TRUE(ref);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) num += (v[i] - (*ref)[i]) * (v[i] - (*ref)[i]), den += (*ref)[i] * (*ref)[i];
  EXPECT_LT(std::sqrt(num / den), 1e-2);  // measured 3.2e-3: the serving path rounds activations to bf16
  EXPECT_GT(den, 0.0);
}

TEST(TrainModel, RefusesWhatItCannotTrain) {
  auto c = dit::stock_config("tiny-mmdit");
  ASSERT_TRUE(c);
  auto L = param_layout::of(*c);
  ASSERT_FALSE(L);
  EXPECT_NE(L.err().what.find("class-conditional"), std::string::npos) << L.err().what;
}

}  // namespace
}  // namespace gfdit::train
