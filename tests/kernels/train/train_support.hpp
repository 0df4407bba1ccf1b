#pragma once
// The tests' small training setup: a 28x28 class-conditional DiT (16 tokens of 7x7 patches,
// hidden 32, depth 2, 2 heads) on the first pictures of Debian's Fashion-MNIST.
#include <filesystem>
#include <fstream>
#include <string>

#include "kernels/dit/config.hpp"

namespace gfdit::train::testing {

inline const char* fashion_dir = "/usr/share/datasets/fashion-mnist";

inline dit::model_config tiny_fashion_config() {
  dit::model_config c;
  c.name = "train-tiny";
  c.hidden = 32, c.depth = 2, c.heads = 2, c.mlp_ratio = 2, c.latent_channels = 1;
  c.patch_h = c.patch_w = 7, c.height = c.width = 28, c.num_classes = 10;
  return c;
}

inline bool have_fashion() { return std::filesystem::exists(std::string(fashion_dir) + "/train-images-idx3-ubyte.gz"); }

// A model folder holding only the card (config.json), as training starts from.
inline void write_card(const std::filesystem::path& dir, const dit::model_config& c) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << dit::to_json(c);
}

}  // namespace gfdit::train::testing
