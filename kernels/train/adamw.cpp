#include "kernels/train/adamw.hpp"

#include <algorithm>
#include <cmath>

namespace gfdit::train {

float learning_rate(const adamw_options& o, std::int64_t step, std::int64_t total_steps) {
  const double warm = std::min(1.0, static_cast<double>(step + 1) / std::max(1, o.warmup));
  // train.py uses 3.14159265 through a float32 tensor's cos; the difference is below 1e-8 relative.
  const double cosine = 0.1 + 0.9 * 0.5 * (1.0 + std::cos(static_cast<double>(step) / total_steps * 3.14159265));
  return static_cast<float>(o.lr * warm * cosine);
}

double grad_norm(std::span<const float> g) {
  double s = 0;
  for (float x : g) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

adamw_state adamw_init(std::span<const float> params) {
  adamw_state s;
  s.m.assign(params.size(), 0.0f);
  s.v.assign(params.size(), 0.0f);
  s.ema.assign(params.begin(), params.end());
  return s;
}

void adamw_step(const adamw_options& o, std::int64_t total_steps, double norm, std::span<float> grad,
                std::span<float> params, adamw_state& s) {
  if (o.clip > 0) {  // clip_grad_norm_: scale by max / (norm + 1e-6) when that is below one
    const float coef = static_cast<float>(o.clip / (norm + 1e-6));
    if (coef < 1.0f)
      for (auto& g : grad) g *= coef;
  }
  const float lr = learning_rate(o, s.step, total_steps);
  const std::int64_t t = s.step + 1;
  const float bc1 = 1.0f - static_cast<float>(std::pow(static_cast<double>(o.beta1), static_cast<double>(t)));
  const float bc2 = 1.0f - static_cast<float>(std::pow(static_cast<double>(o.beta2), static_cast<double>(t)));
  const float step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
  const float decay = std::min(o.ema_max, static_cast<float>(1 + s.step) / static_cast<float>(10 + s.step));
  for (std::size_t i = 0; i < params.size(); ++i) {
    params[i] *= 1.0f - lr * o.weight_decay;
    s.m[i] = o.beta1 * s.m[i] + (1.0f - o.beta1) * grad[i];
    s.v[i] = o.beta2 * s.v[i] + (1.0f - o.beta2) * grad[i] * grad[i];
    params[i] -= step_size * s.m[i] / (std::sqrt(s.v[i]) / bc2_sqrt + o.eps);
    s.ema[i] = decay * s.ema[i] + (1.0f - decay) * params[i];
  }
  s.step = t;
}

}  // namespace gfdit::train
