#pragma once
// One forward of the DiT on the CPU, on this rank's token shard, with Ulysses attention across
// the group. Every per-token operation is a fixed-order fp32 dot product over bf16 values and
// attention reduces over all keys in global token order, so a token's output bits do not depend
// on the degree or on which rank holds it.
#include <cstdint>
#include <span>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/parallel.hpp"

namespace gfdit::dit {

struct forward_input {
  int batch = 1;
  std::span<const float> image;      // [batch][my image tokens][patch_dim] (patchified latent)
  std::span<const float> timesteps;  // [batch], model units (0..1000)
  std::span<const int> labels;       // class_label: [batch]; num_classes is the null class
  std::span<const float> text;       // text: [batch][text_tokens][text_dim] (full, every rank)
};

// Returns [batch][my image tokens][patch_dim]: the velocity (flow) or noise (DDIM) prediction.
result<std::vector<float>> forward_cpu(const model& m, const forward_input& in, const sp_group& g);

// Attention of one head set: q, k, v, o are [tokens][heads][head_dim]; fp32 accumulation over
// keys in index order. Exposed for the test that compares it with the attention reference.
void attention_cpu(const float* q, const float* k, const float* v, float* o, int tokens, int heads, int head_dim);

}  // namespace gfdit::dit
