#pragma once
// One picture from a model card, start to end: the initial noise, the denoising steps (on the
// CPU at any Ulysses degree, the ranks as threads over a host World, or on one GPU), the decode
// and the pixels. The same request gives the same pixels at every degree.
#include <cstdint>
#include <functional>

#include "common/result.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/dit/png.hpp"
#include "kernels/dit/vae.hpp"
#include "kernels/dit/vae_gpu.hpp"

namespace gfdit::dit {

enum class device_kind : std::uint8_t { cpu, gpu };

struct generate_options {
  int class_label = 0;
  std::uint64_t seed = 0;
  int steps = 0;           // 0: the card's default
  float guidance = -1.0f;  // < 0: the card's default; <= 1 runs no CFG
  int degree = 1;          // CPU: Ulysses degree, one thread a rank; it must divide the heads
  device_kind device = device_kind::cpu;
  int gpu = 0;
  std::function<void(int done, int total)> progress;  // after each step (from rank 0)
};

// The request the options stand for (defaults filled in from the card).
request make_request(const model_card& card, const generate_options& o);

// The final latent [channels][frames][height][width] of one request.
result<std::vector<float>> generate_latent(const model& m, const model_card& card, const generate_options& o);

// The decode stage: the VAE (latent models; `vae` loaded from the card's vae_dir) or nothing
// (pixel-space models), then a clamp to the card's pixel range and rounding to 8 bits (1 channel
// grey, 3 RGB).
result<image8> decode_pixels(const model_card& card, const std::vector<float>& latent,
                             const vae_decoder* vae = nullptr);
// The same with the VAE on the GPU (vae_gpu.hpp) for `batch` latents [batch][C][h][w], one
// picture each, decoded one at a time: a picture's bytes do not depend on the batch.
result<std::vector<image8>> decode_pixels_gpu(const model_card& card, const std::vector<float>& latents, int batch,
                                              gpu_vae_decoder& vae);

}  // namespace gfdit::dit
