#pragma once
// `gfdit profile`'s measurement: a served checkpoint's stages timed on real cpu/gpu worker
// backends, exactly as the serving graph runs them (dit_backend::run on scheduler-shaped tasks:
// prepare, denoise chunks with their checkpoint and barrier, decode to a PNG, a move onto a
// larger group), one forked process per rank joined in one World, at each Ulysses degree asked.
// A degree the model or the machine cannot take (heads that do not split, too few GPUs, a task
// that fails: out of memory) is noted, never fatal.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/serving/profile_fit.hpp"
#include "common/result.hpp"

namespace gfdit {

struct stage_profile_options {
  std::string device = "cpu";  // cpu | gpu (one GPU per rank)
  std::string gpu_collectives = "cuda-ipc";
  std::vector<std::int32_t> degrees{1, 2, 4};
  std::int32_t steps = 4;  // denoising steps in the timed chunk (and in the warm-up chunk before it)
  std::int32_t reps = 3;   // requests per degree; the figures are their medians
  std::chrono::milliseconds collective_timeout{60000};
  std::function<void(const std::string&)> progress;  // a line per finding, as it comes
};

// Forks the ranks: call it before this process has touched CUDA.
result<measured_model> measure_stages(const std::string& name, const std::string& dir, const stage_profile_options& o);

}  // namespace gfdit
