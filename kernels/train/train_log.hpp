#pragma once
// A run's history beside its checkpoint: rank 0 appends a row per step to OUT/train_log.csv
// (step, loss, grad norm, learning rate, seconds, images/s, workers) and redraws OUT/loss.svg
// from it at every checkpoint and at the end, so the curve spans stops and resumes. Resuming
// drops the rows past the checkpoint's step: the steps after it are taken again.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gfdit::train {

struct log_row {
  std::int64_t step = 0;
  double loss = 0, grad_norm = 0, lr = 0, seconds = 0, images_per_s = 0;
  int workers = 1;
};

inline double images_per_s(int batch, double seconds) { return seconds > 0 ? batch / seconds : 0; }
// The row's line on the terminal, one a step, wherever the steps are driven:
// `step 3/6  loss 1.66689  grad norm 0.5059  lr 0.000388  0.004 s  1961.5 images/s  2 workers`.
std::string progress_text(const log_row& row, std::int64_t steps);

// Appends one row (writing the header first when the file is new).
result<void> append_log(const std::filesystem::path& file, const log_row& row);
// The rows, in file order; an error names the line that does not parse. No file: no rows.
result<std::vector<log_row>> read_log(const std::filesystem::path& file);
// Keeps the rows of steps up to `step` (rewriting the file atomically).
result<void> keep_log_until(const std::filesystem::path& file, std::int64_t step);
// The loss against the step, with its moving average, as a standalone SVG document.
std::string loss_svg(const std::vector<log_row>& rows, const std::string& title);

// A run folder's log and curve: OUT/train_log.csv, and OUT/loss.svg drawn from it.
inline std::filesystem::path log_path(const std::filesystem::path& out) { return out / "train_log.csv"; }
result<void> draw_loss(const std::filesystem::path& out, int batch);

}  // namespace gfdit::train
