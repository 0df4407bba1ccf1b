#pragma once
// Denoising a request's latent on a group: the noise, the schedule, CFG and the update rule are
// all per-element functions of global indices, so a chunk of steps can run at any degree and
// the latent can move between degrees at any step without changing a bit of the result.
//
// The latent travels patchified and token-sharded: [my image tokens][patch_dim] fp32, member i
// of the group holding tokens token_shard(image_tokens, degree, i).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/result.hpp"
#include "kernels/collectives/world.hpp"
#include "kernels/dit/forward.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/parallel.hpp"

namespace gfdit::dit {

enum class sampler_kind : std::uint8_t {
  flow_euler,  // rectified flow (SD3/Flux/Wan): x += (sigma_next - sigma) * v
  ddim,        // eta = 0, epsilon prediction, DiT's linear beta schedule over 1000 steps
};

struct request {
  std::uint64_t seed = 0;
  int steps = 4;
  sampler_kind sampler = sampler_kind::flow_euler;
  float guidance = 1.0f;    // classifier-free guidance scale; <= 1 runs the conditional pass only
  float shift = 1.0f;       // flow: SD3 timestep shift
  int class_label = 0;      // class_label models
  std::vector<float> text;  // text models: [text_tokens][text_dim]; the null prompt is zeros
};

result<void> validate(const model_config& c, const request& r);

// Model-time of step i (0..steps-1) and the sampler's coefficients, in double, the same everywhere.
double step_time(const request& r, int i);

// This shard of the initial noise: element (token, j) is normal(seed, token * patch_dim + j).
std::vector<float> initial_latent(const model_config& c, const request& r, int degree, int index);

// Runs steps [begin, end) on the group; `shard` is updated in place.
result<void> denoise(const model& m, const request& r, int begin, int end, const sp_group& g,
                     std::vector<float>& shard);
// The same loop over any model call (gpu_model::denoise passes the GPU forward): `forward` is
// forward_cpu's contract; `gather` is the CFG pair's all_gather of the two passes' outputs
// (mine -> both[pair index], host memory; only called under CFG-parallel).
using step_forward = std::function<result<std::vector<float>>(const forward_input&, const sp_group&)>;
using pair_gather = std::function<result<void>(const float* mine, float* both, std::size_t bytes)>;
result<void> denoise_with(const step_forward& forward, const pair_gather& gather, const model_config& c,
                          const request& r, int begin, int end, const sp_group& g, std::vector<float>& shard);

// Several requests at degree 1 (same step count; full latents [image_tokens][patch_dim]), every
// pass of a step in one forward call: the requests' conditional passes, then the unconditional
// passes of those under CFG. A forward whose rows do not depend on the batch (the CPU's; the
// GPU's, whose GEMM algorithms are fixed per weight shape) gives each request its own bits.
result<void> denoise_batch(const step_forward& forward, const model_config& c, std::span<const request> rs, int begin,
                           int end, std::vector<std::vector<float>>& latents);

// Moves the latent from group `from`'s token layout to group `to`'s (either may be a single
// rank). Every member of either group calls it; returns my shard under `to` (empty if not in it).
result<std::vector<float>> reshard(coll::World& w, const coll::Group& from, const coll::Group& to,
                                   const model_config& c, std::span<const float> shard);

// Patchified tokens [image_tokens][patch_dim] -> latent [channels][frames][height][width].
std::vector<float> unpatchify(const model_config& c, std::span<const float> tokens);
std::vector<float> patchify(const model_config& c, std::span<const float> latent);

// Text embeddings for tests and benchmarks: normal(seed) values.
std::vector<float> seeded_text(const model_config& c, std::uint64_t seed);

}  // namespace gfdit::dit
