#pragma once
// A DiT's shape: sizes, patching, conditioning and positional encoding, plus the latent shape a
// request runs at. Stock configs name the published models' sizes; `tiny-*` serve the tests.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gfdit::dit {

enum class conditioning : std::uint8_t { class_label, text };  // text: Flux single-stream joint
enum class positional : std::uint8_t { sincos, rope };

struct model_config {
  std::string name;
  int hidden = 0;
  int depth = 0;
  int heads = 0;
  int mlp_ratio = 4;
  int latent_channels = 4;
  // Patch size (frames, height, width); patch_t == 1 with frames == 1 is a 2-D (image) model.
  int patch_t = 1, patch_h = 2, patch_w = 2;
  conditioning cond = conditioning::class_label;
  int num_classes = 1000;  // class_label: the embedding table has one more row, the null class
  int text_dim = 0;        // text: width of the incoming text-token embeddings
  int text_tokens = 0;     // text: tokens joined in front of the image tokens
  positional pos = positional::sincos;
  float rope_theta = 10000.0f;
  // Timestep features use frequencies exp(-ln(10000) k / (128 - freq_shift)): 0 is DiT's own
  // code, 1 is diffusers' Timesteps(downscale_freq_shift=1), which its DiT checkpoints learned.
  int freq_shift = 0;
  // Latent shape of a request (channels x frames x height x width).
  int frames = 1, height = 32, width = 32;

  int head_dim() const noexcept { return heads > 0 ? hidden / heads : 0; }
  int patch_dim() const noexcept { return latent_channels * patch_t * patch_h * patch_w; }
  int grid_t() const noexcept { return frames / patch_t; }
  int grid_h() const noexcept { return height / patch_h; }
  int grid_w() const noexcept { return width / patch_w; }
  std::int64_t image_tokens() const noexcept { return static_cast<std::int64_t>(grid_t()) * grid_h() * grid_w(); }
  std::int64_t seq_tokens() const noexcept { return image_tokens() + (cond == conditioning::text ? text_tokens : 0); }
  bool video() const noexcept { return frames > 1 || patch_t > 1; }
};

// Sizes consistent: heads divide hidden, patches divide the latent, RoPE axes fit the head.
result<void> validate(const model_config& c);

// dit-s-2, dit-xl-2-256, dit-xl-2-512, mmdit-12b-standin, video-dit-5b-standin (480p x 49 frames; see
// with_video_shape), tiny-dit (class label, sin-cos, 2-D), tiny-mmdit (text, 3-D RoPE, video).
result<model_config> stock_config(std::string_view name);
std::vector<std::string> stock_config_names();
// A video model's latent for a pixel shape: VAE stride 16 spatially x 4 temporally, +1 frame.
result<model_config> with_video_shape(model_config c, int width_px, int height_px, int frames_px);

// JSON text (kept in the safetensors metadata) and back; parse errors are values.
std::string to_json(const model_config& c);
result<model_config> config_from_json(std::string_view text);

}  // namespace gfdit::dit
