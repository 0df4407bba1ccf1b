#pragma once
// Forward and backward of each op of the DiT as forward_cpu runs it, without its bf16 rounding
// (training keeps fp32 activations and master weights). Templates over the scalar: float trains,
// double checks the gradients against finite differences. Every loop runs in one fixed order and
// backward calls accumulate (+=) into gradients the caller zeroed, so the bits of a gradient
// depend only on the inputs.
#include <cmath>
#include <cstdint>

#include "kernels/dit/numerics.hpp"

namespace gfdit::train {

// y[r] = W x[r] + b; W [out][in].
template <class T>
void linear_forward(const T* w, const T* b, const T* x, std::int64_t rows, int in, int out, T* y) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o)
      y[r * out + o] = dit::dot(x + r * in, w + static_cast<std::int64_t>(o) * in, in) + b[o];
}

// dx += dy W (if dx), dW += dy^T x, db += sum_r dy.
template <class T>
void linear_backward(const T* w, const T* x, const T* dy, std::int64_t rows, int in, int out, T* dx, T* dw, T* db) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* dyr = dy + r * out;
    const T* xr = x + r * in;
    for (int o = 0; o < out; ++o) {
      const T g = dyr[o];
      const T* wo = w + static_cast<std::int64_t>(o) * in;
      T* dwo = dw + static_cast<std::int64_t>(o) * in;
      if (dx)
        for (int i = 0; i < in; ++i) dx[r * in + i] += g * wo[i];
      for (int i = 0; i < in; ++i) dwo[i] += g * xr[i];
      db[o] += g;
    }
  }
}

// LayerNorm without affine (eps 1e-6), then y = xhat * (1 + scale) + shift; keeps xhat and
// 1/std for the backward.
template <class T>
void modulated_norm_forward(const T* x, int h, const T* shift, const T* scale, T* y, T* xhat, T* rstd) {
  T mean = 0, var = 0;
  for (int i = 0; i < h; ++i) mean += x[i];
  mean /= static_cast<T>(h);
  for (int i = 0; i < h; ++i) var += (x[i] - mean) * (x[i] - mean);
  *rstd = T(1) / std::sqrt(var / static_cast<T>(h) + T(1e-6));
  for (int i = 0; i < h; ++i) {
    xhat[i] = (x[i] - mean) * *rstd;
    y[i] = xhat[i] * (T(1) + scale[i]) + shift[i];
  }
}

// dx += rstd (g - mean(g) - xhat mean(g xhat)) with g = dy (1 + scale); dshift += dy,
// dscale += dy xhat.
template <class T>
void modulated_norm_backward(const T* dy, int h, const T* scale, const T* xhat, T rstd, T* dx, T* dshift, T* dscale) {
  T mg = 0, mgx = 0;
  for (int i = 0; i < h; ++i) {
    const T g = dy[i] * (T(1) + scale[i]);
    mg += g;
    mgx += g * xhat[i];
    dshift[i] += dy[i];
    dscale[i] += dy[i] * xhat[i];
  }
  mg /= static_cast<T>(h);
  mgx /= static_cast<T>(h);
  for (int i = 0; i < h; ++i) dx[i] += rstd * (dy[i] * (T(1) + scale[i]) - mg - xhat[i] * mgx);
}

// Derivatives of dit::gelu_tanh (the tanh form the forward uses) and dit::silu.
template <class T>
T gelu_tanh_grad(T x) {
  const T k = T(0.7978845608028654);
  const T th = std::tanh(k * (x + T(0.044715) * x * x * x));
  return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * k * (T(1) + T(3 * 0.044715) * x * x);
}
template <class T>
T silu_grad(T x) {
  const T s = T(1) / (T(1) + std::exp(-x));
  return s * (T(1) + x * (T(1) - s));
}

// One head: o = softmax(q k^T / sqrt(d)) v over n tokens; rows of q, k, v are `stride` apart and
// rows of o `ostride` (a head's columns of [tokens][3][heads * d] and [tokens][heads * d]).
// Keeps the probabilities p [n][n].
template <class T>
void attention_forward(const T* q, const T* k, const T* v, int n, int d, int stride, T* o, int ostride, T* p) {
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  for (int i = 0; i < n; ++i) {
    T* pi = p + static_cast<std::int64_t>(i) * n;
    T mx = -INFINITY;
    for (int j = 0; j < n; ++j) {
      pi[j] = dit::dot(q + i * stride, k + j * stride, d) * scale;
      mx = std::max(mx, pi[j]);
    }
    T sum = 0;
    for (int j = 0; j < n; ++j) sum += (pi[j] = std::exp(pi[j] - mx));
    for (int j = 0; j < n; ++j) pi[j] /= sum;
    T* oi = o + i * ostride;
    for (int e = 0; e < d; ++e) oi[e] = 0;
    for (int j = 0; j < n; ++j)
      for (int e = 0; e < d; ++e) oi[e] += pi[j] * v[j * stride + e];
  }
}

// dq, dk, dv (stride) += the gradients from dout (ostride); `ds` is scratch [n].
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* p, const T* dout, int n, int d, int stride,
                        int ostride, T* dq, T* dk, T* dv, T* ds) {
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  for (int i = 0; i < n; ++i) {
    const T* pi = p + static_cast<std::int64_t>(i) * n;
    const T* doi = dout + i * ostride;
    T rowdot = 0;  // sum_j p_ij dp_ij
    for (int j = 0; j < n; ++j) {
      ds[j] = dit::dot(doi, v + j * stride, d);  // dp_ij
      rowdot += pi[j] * ds[j];
    }
    for (int j = 0; j < n; ++j) {
      const T dsj = pi[j] * (ds[j] - rowdot) * scale;
      for (int e = 0; e < d; ++e) {
        dq[i * stride + e] += dsj * k[j * stride + e];
        dk[j * stride + e] += dsj * q[i * stride + e];
        dv[j * stride + e] += pi[j] * doi[e];
      }
    }
  }
}

}  // namespace gfdit::train
