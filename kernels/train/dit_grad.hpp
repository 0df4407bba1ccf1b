#pragma once
// The DiT's loss and its gradient for one sample, on the CPU: forward_cpu's architecture
// (class-conditional, 2-D sin-cos positions, adaLN-Zero blocks, tanh-GELU, the final layer) with
// fp32 activations instead of bf16 ones, and the hand-written backward of every op (ops.hpp).
// A sample's gradient is a pure function of the weights and the sample, computed in one fixed
// order, so summing per-sample gradients in a fixed tree gives the same bits on any number of
// workers (reduce.hpp).
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/config.hpp"
#include "kernels/dit/model.hpp"

namespace gfdit::train {

// Where each of weight_specs(config)'s tensors sits in one flat parameter vector (that order).
struct param_layout {
  dit::model_config config;
  std::vector<dit::tensor_spec> specs;
  std::vector<std::int64_t> offset;
  std::int64_t total = 0;

  // Refuses what the training path does not run: text conditioning, RoPE, video.
  static result<param_layout> of(const dit::model_config& c);
  std::int64_t at(std::string_view name) const;  // offset of a tensor; -1 if unknown
};

// The rectified-flow loss of one sample: the model sees xt = (1 - sigma) x0 + sigma noise at
// t = 1000 sigma and should predict noise - x0; loss = mean((v - target)^2) over its values.
template <class T>
struct flow_sample {
  std::span<const T> xt;      // [image tokens][patch_dim], patchified
  std::span<const T> target;  // same shape
  T t = 0;                    // model units
  int label = 0;              // num_classes is the null class (CFG dropout)
};

// The model's output (velocity) for one sample, [image tokens][patch_dim].
template <class T>
std::vector<T> velocity(const param_layout& L, std::span<const T> params, std::span<const T> xt, T t, int label);

// Returns the sample's loss and adds its gradient to `grad` (L.total values).
template <class T>
T loss_and_grad(const param_layout& L, std::span<const T> params, const flow_sample<T>& s, std::span<T> grad);

}  // namespace gfdit::train
