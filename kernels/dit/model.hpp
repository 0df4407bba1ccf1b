#pragma once
// A DiT's weights: named bf16 tensors (the storage the GPU path uses) plus fp32 copies for the
// CPU forward. They come from a counter-based generator (any tensor, any slice, reproducible
// from the seed alone) or from a safetensors file read through a bounded, checking loader.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/config.hpp"

namespace gfdit::dit {

struct tensor_spec {
  std::string name;
  std::vector<std::int64_t> shape;
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

// Every tensor a config needs, in a fixed order (the order of a written file).
std::vector<tensor_spec> weight_specs(const model_config& c);
std::int64_t parameter_count(const model_config& c);

// Pointers into the fp32 copies, per block, so the forward does no map lookups.
struct linear_ref {
  const float* w = nullptr;  // [out, in], row-major
  const float* b = nullptr;  // [out]
  int out = 0, in = 0;
};
struct block_ref {
  linear_ref ada, qkv, proj, fc1, fc2;
};

class model {
 public:
  // Moves keep the tensors' storage (map nodes, vector buffers), so the bound pointers stay valid.
  model(model&&) noexcept = default;
  model& operator=(model&&) noexcept = default;
  model(const model&) = delete;
  model& operator=(const model&) = delete;

  // Weights from the seed: tensor `name` element i is a pure function of (seed, name, i).
  static result<model> generate(const model_config& c, std::uint64_t seed);
  // Reads a file written by save(); `expect` (if given) must match the config stored in it.
  static result<model> load(const std::filesystem::path& path, const model_config* expect = nullptr);
  result<void> save(const std::filesystem::path& path) const;
  // Weights already under gfdit's names (weight_specs), e.g. mapped from another layout: every
  // tensor present with its size, none extra, all finite; rounded to bf16. `where` starts errors.
  static result<model> from_named(const model_config& c, std::map<std::string, std::vector<float>> t,
                                  const std::string& where = "dit weights");

  const model_config& config() const noexcept { return config_; }
  const std::map<std::string, std::vector<std::uint16_t>>& tensors() const noexcept { return bf16_; }

  const linear_ref& x_embed() const noexcept { return x_embed_; }
  const linear_ref& t_fc1() const noexcept { return t_fc1_; }
  const linear_ref& t_fc2() const noexcept { return t_fc2_; }
  const linear_ref& txt_embed() const noexcept { return txt_embed_; }
  const float* y_table() const noexcept { return y_table_; }  // [num_classes + 1, hidden]
  const block_ref& block(int i) const noexcept { return blocks_[static_cast<std::size_t>(i)]; }
  const linear_ref& final_ada() const noexcept { return final_ada_; }
  const linear_ref& final_linear() const noexcept { return final_linear_; }

 private:
  model() = default;
  static result<model> from_tensors(const model_config& c, std::map<std::string, std::vector<std::uint16_t>> t);
  void bind();

  model_config config_;
  std::map<std::string, std::vector<std::uint16_t>> bf16_;
  std::map<std::string, std::vector<float>> f32_;
  linear_ref x_embed_, t_fc1_, t_fc2_, txt_embed_, final_ada_, final_linear_;
  const float* y_table_ = nullptr;
  std::vector<block_ref> blocks_;
};

}  // namespace gfdit::dit
