#pragma once
// A diffusers DiTPipeline folder as the Hub lays it out, from the tiny fixtures (random weights
// that models/reference wrote in diffusers' names): model_index.json, transformer/, vae/ (links to
// the fixtures) and scheduler/scheduler_config.json as given.
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace gfdit::dit::testing {

inline std::filesystem::path tiny_pipeline(const std::string& scheduler_json) {
  namespace fs = std::filesystem;
  const fs::path fixtures = fs::path(GFDIT_SOURCE_DIR) / "tests" / "kernels" / "dit" / "fixtures";
  static int serial = 0;
  const fs::path dir = fs::temp_directory_path() /
                       ("gfdit-tiny-pipeline-" + std::to_string(::getpid()) + "-" + std::to_string(serial++));
  fs::remove_all(dir);
  fs::create_directories(dir / "scheduler");
  fs::create_directory_symlink(fixtures / "tiny-diffusers-dit" / "transformer", dir / "transformer");
  fs::create_directory_symlink(fixtures / "tiny-vae", dir / "vae");
  std::ofstream(dir / "model_index.json") << R"({"_class_name": "DiTPipeline", "id2label": {"0": "tench, Tinca tinca",
    "1": "goldfish, Carassius auratus", "2": "great white shark", "3": "tiger shark", "4": "hammerhead", "5": "electric ray",
    "6": "stingray", "7": "cock", "8": "hen", "9": "ostrich, Struthio camelus"}})";
  std::ofstream(dir / "scheduler" / "scheduler_config.json") << scheduler_json;
  return dir;
}

inline const char* dit_ddim_scheduler() {
  return R"({"_class_name": "DDIMScheduler", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
             "num_train_timesteps": 1000, "clip_sample": false})";
}

}  // namespace gfdit::dit::testing
