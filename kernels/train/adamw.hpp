#pragma once
// The optimizer of models/fashion-dit/train.py, in fp32 on master weights: gradient-norm
// clipping (torch.nn.utils.clip_grad_norm_), AdamW (torch.optim.AdamW's update, betas 0.9/0.99,
// eps 1e-8, no weight decay by default), the learning rate's linear warm-up then cosine to a
// tenth, and the EMA of the weights that the script exports. Element-wise in index order: the
// same gradient gives the same bits.
#include <cstdint>
#include <span>
#include <vector>

namespace gfdit::train {

struct adamw_options {
  float lr = 5e-4f;
  float beta1 = 0.9f, beta2 = 0.99f, eps = 1e-8f, weight_decay = 0.0f;
  float clip = 1.0f;        // max gradient norm; <= 0: no clipping
  int warmup = 500;         // steps of linear warm-up
  float ema_max = 0.9995f;  // EMA decay min(ema_max, (1 + step) / (10 + step))
};

// train.py's schedule: lr * min(1, (step + 1) / warmup) * (0.1 + 0.9 * (1 + cos(pi step / steps)) / 2).
float learning_rate(const adamw_options& o, std::int64_t step, std::int64_t total_steps);

// The L2 norm of a gradient, summed in double in index order.
double grad_norm(std::span<const float> g);

struct adamw_state {
  std::vector<float> m, v, ema;  // first and second moments; the EMA weights
  std::int64_t step = 0;         // steps taken
};

adamw_state adamw_init(std::span<const float> params);

// One step at `step` (= state.step) of `total_steps`: clips `grad` in place by `norm` (its
// grad_norm), updates params, the moments and the EMA, and counts the step.
void adamw_step(const adamw_options& o, std::int64_t total_steps, double norm, std::span<float> grad,
                std::span<float> params, adamw_state& s);

}  // namespace gfdit::train
