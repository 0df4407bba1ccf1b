#pragma once
// The inputs and outputs of a diffusers DiT parity file (reference_io.safetensors, written by
// models/reference: latent [B][C][H][W], timesteps, labels, outputs [B][out_channels][H][W]) and
// gfdit's forward run on them, on the CPU or the GPU.
#include <functional>
#include <span>
#include <vector>

#include "kernels/dit/forward.hpp"
#include "kernels/dit/safetensors.hpp"
#include "kernels/dit/sampler.hpp"

namespace gfdit::dit::testing {

using forward_fn = std::function<result<std::vector<float>>(const forward_input&)>;

// gfdit's forward on the file's inputs, as diffusers' epsilon channels [B][C][H][W]; empty on error.
inline std::vector<float> eps_of(const model_config& c, const st_file& io, const forward_fn& forward) {
  const auto& lat = io.tensors.at("latent").values;
  const int B = static_cast<int>(io.tensors.at("latent").shape[0]);
  const std::size_t per = static_cast<std::size_t>(c.latent_channels) * c.height * c.width;
  std::vector<float> tokens;
  for (int b = 0; b < B; ++b) {
    auto t = patchify(c, std::span<const float>(lat).subspan(b * per, per));
    tokens.insert(tokens.end(), t.begin(), t.end());
  }
  std::vector<int> labels;
  for (float l : io.tensors.at("labels").values) labels.push_back(static_cast<int>(l));
  auto out = forward(forward_input{B, tokens, io.tensors.at("timesteps").values, labels, {}});
  if (!out) return {};
  std::vector<float> eps;
  const std::size_t tok = static_cast<std::size_t>(c.image_tokens() * c.patch_dim());
  for (int b = 0; b < B; ++b) {
    auto l = unpatchify(c, std::span<const float>(*out).subspan(b * tok, tok));
    eps.insert(eps.end(), l.begin(), l.end());
  }
  return eps;
}

inline std::vector<float> eps_of(const model& m, const st_file& io) {
  return eps_of(m.config(), io, [&m](const forward_input& in) { return forward_cpu(m, in, sp_group{}); });
}

// The first `channels` channels of a [B][out_channels][H][W] reference output.
inline std::vector<float> first_channels(const st_tensor& t, int channels) {
  const auto B = t.shape[0], OC = t.shape[1], HW = t.shape[2] * t.shape[3];
  std::vector<float> v;
  for (std::int64_t b = 0; b < B; ++b)
    v.insert(v.end(), t.values.begin() + b * OC * HW, t.values.begin() + (b * OC + channels) * HW);
  return v;
}

}  // namespace gfdit::dit::testing
