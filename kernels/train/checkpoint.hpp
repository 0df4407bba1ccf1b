#pragma once
// A training checkpoint is a model folder the serving side loads, plus the optimizer beside it:
//   DIR/config.json              the model card (architecture, class names, sampler defaults)
//   DIR/model.safetensors        the EMA weights in bf16 (what train.py exports; dit::load_model)
//   DIR/train_state.safetensors  fp32 master weights, AdamW moments, EMA, the step taken and
//                                the run's options (metadata), so a resumed run continues the
//                                same bits.
// Files are written beside their final name and renamed, so a crash never leaves half a file.
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "kernels/train/trainer.hpp"

namespace gfdit::train {

result<void> save_checkpoint(const std::filesystem::path& dir, const std::string& card_json, const trainer& t);

struct train_state {
  train_options options;
  std::int64_t data_count = 0;  // pictures in the data set the run draws from (its order depends on it)
  std::vector<float> params;
  adamw_state state;
};

// Reads DIR/train_state.safetensors for model layout L; errors name the file and the tensor.
result<train_state> load_train_state(const std::filesystem::path& dir, const param_layout& L);

}  // namespace gfdit::train
