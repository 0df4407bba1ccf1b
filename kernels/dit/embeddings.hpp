#pragma once
// The fixed (unlearned) features of the DiT: timestep frequencies and sin-cos positions, shared
// by the serving forward and the training path so both see the same values. Computed in double
// and cast to the caller's scalar.
#include <cmath>
#include <cstdint>

#include "kernels/dit/config.hpp"

namespace gfdit::dit {

struct pos3 {
  int t = 0, h = 0, w = 0;
};
inline pos3 image_pos(const model_config& c, std::int64_t idx) {
  const std::int64_t hw = static_cast<std::int64_t>(c.grid_h()) * c.grid_w();
  return {static_cast<int>(idx / hw), static_cast<int>(idx % hw / c.grid_w()), static_cast<int>(idx % c.grid_w())};
}

// 256 features of a timestep (model units): [cos(t w_k) | sin(t w_k)], w_k = exp(-ln(1e4) k / (128 - shift)).
template <class T>
void timestep_features(double t, int freq_shift, T* out) {
  for (int k = 0; k < 128; ++k) {
    const double w = std::exp(-std::log(10000.0) * k / (128.0 - freq_shift));
    out[k] = static_cast<T>(std::cos(t * w));
    out[128 + k] = static_cast<T>(std::sin(t * w));
  }
}

// Sinusoidal features of one coordinate into `n` (even) slots: [sin(p w_k) | cos(p w_k)].
template <class T>
void sincos_1d(double p, int n, T* out) {
  const int half = n / 2;
  for (int k = 0; k < half; ++k) {
    const double w = std::pow(10000.0, -static_cast<double>(k) / half);
    out[k] = static_cast<T>(std::sin(p * w));
    out[half + k] = static_cast<T>(std::cos(p * w));
  }
}

// The position embedding of image token `idx` into `out` [hidden] (zeros past the axes' slots).
template <class T>
void sincos_position(const model_config& c, std::int64_t idx, T* out) {
  const pos3 p = image_pos(c, idx);
  const int axes = c.video() ? 3 : 2, per = 2 * (c.hidden / (2 * axes));
  for (int i = 0; i < c.hidden; ++i) out[i] = 0;
  const int coord[3] = {p.w, p.h, p.t};  // DiT's (MAE's) order: the first half encodes the column
  for (int a = 0; a < axes; ++a) sincos_1d(coord[a], per, &out[a * per]);
}

}  // namespace gfdit::dit
