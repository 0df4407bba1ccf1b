#pragma once
// A model directory, in one of two layouts:
// - gfdit's: config.json (the architecture in config.hpp's JSON, plus what serving needs: class
//   names, the sampler and its defaults, the pixel range, optionally "vae": a subfolder) beside
//   model.safetensors;
// - a diffusers DiTPipeline folder: model_index.json (its id2label gives the class names),
//   transformer/ (diffusers_dit.hpp), vae/ (vae.hpp), scheduler/scheduler_config.json (DiT's
//   linear-beta DDIM schedule, checked).
// Found by name on a search path, so `--model fashion-dit` works from a clone, a build folder or
// an install.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/config.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/sampler.hpp"

namespace gfdit::dit {

enum class weights_layout : std::uint8_t { gfdit, diffusers };

struct model_card {
  std::filesystem::path dir;
  weights_layout layout = weights_layout::gfdit;
  std::filesystem::path vae_dir;  // empty: a pixel-space model, decoded by clamping
  model_config config;
  std::vector<std::string> class_names;  // class_label models: one per class, in label order
  sampler_kind sampler = sampler_kind::flow_euler;
  int default_steps = 25;
  float default_guidance = 4.0f;
  float shift = 1.0f;
  float pixel_lo = -1.0f, pixel_hi = 1.0f;  // pixel models: the values black and white stand for

  std::filesystem::path weights() const {
    return layout == weights_layout::gfdit ? dir / "model.safetensors"
                                           : dir / "transformer" / "diffusion_pytorch_model.safetensors";
  }
};

// Reads DIR/config.json or DIR/model_index.json; errors name the file and the field.
result<model_card> read_model_card(const std::filesystem::path& dir);
// Loads the card's weights, checking that they were saved for this config.
result<model> load_model(const model_card& card);

// Where `--model NAME` is looked for: $GFDIT_MODELS (':'-separated), ./models, and models/ in
// up to four folders above `exe` (a build tree inside a clone; PREFIX/share/gfdit/models).
std::vector<std::filesystem::path> model_search_path(const std::filesystem::path& exe);
// The first DIR/NAME holding a config.json; the error lists the folders searched and the models there.
result<std::filesystem::path> find_model(std::string_view name, const std::vector<std::filesystem::path>& search);

// A prompt to a class: the class name, one of its '/'- or ','-separated parts ("t-shirt" for
// "t-shirt/top", "tench" for ImageNet's "tench, Tinca tinca"), case and punctuation aside, or a prompt that contains
// exactly one such name as whole words ("a photo of an ankle boot"). Otherwise an error naming the nearest names.
result<int> match_class(const model_card& card, std::string_view prompt);

}  // namespace gfdit::dit
