#pragma once
// The SD VAE decoder (vae.hpp) on one GPU. Activations stay fp32 in device memory; every
// convolution is an im2col into bf16 columns (the nearest-2x upsample folded into the im2col of
// the conv after it) times the bf16 weights in one cuBLASLt GEMM with fp32 accumulation and
// output; bias and residual adds are small kernels; GroupNorm (+SiLU) sums in a fixed order; the
// mid block's attention is GEMMs around a row softmax. No atomics, no split-K, one algorithm
// per GEMM shape chosen once: the same latent gives the same bits on every run, and the images
// of a batch are decoded one at a time through identical GEMM shapes, so an image's bits do not
// depend on the batch it came in. Within bf16 rounding of the CPU decoder (~0.6% rel RMS on the
// tiny fixture). Without CUDA every entry point returns an error.
#include <memory>
#include <span>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/vae.hpp"

namespace gfdit::dit {

class gpu_vae_decoder {
 public:
  // Uploads the decoder's weights (as bf16) to `device`.
  static result<std::unique_ptr<gpu_vae_decoder>> upload(const vae_decoder& cpu, int device = 0);
  ~gpu_vae_decoder();
  gpu_vae_decoder(const gpu_vae_decoder&) = delete;
  gpu_vae_decoder& operator=(const gpu_vae_decoder&) = delete;

  // vae_decoder::decode's contract for `batch` latents [batch][latent_channels][h][w] (still
  // scaled; h and w 1..512) -> [batch][out_channels][sh][sw], s = 2^upsamplers(). The im2col
  // scratch stays under ~256 MB (rows of pixels in chunks); activations take about five times
  // the largest feature map (1.3 GB for a 512x512 SD image). One call at a time.
  result<std::vector<float>> decode(std::span<const float> latents, int batch, int h, int w);
  // Median milliseconds (CUDA events) of the device work of decode() for `batch` seeded latents
  // of h x w (uploads and downloads left out), after one untimed decode.
  result<double> time_decode(int batch, int h, int w, int iters);

  const vae_config& config() const noexcept;

  struct impl;

 private:
  explicit gpu_vae_decoder(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gfdit::dit
