#pragma once
// One worker process of a data-parallel training run, start to end: it joins the World (host
// backend, shared memory; the rendezvous in `world_dir`), loads the data, starts from the
// initial weights or resumes DIR's checkpoint, takes the steps, and rank 0 writes the model
// folder (checkpoint.hpp) every `checkpoint_every` steps and at the end. `gfdit train` starts
// `degree` of them, the pool; which of them take a step can change while the run goes on
// (membership.hpp). The weights are the same bits at any degree and across such changes.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "common/result.hpp"
#include "kernels/train/train_log.hpp"
#include "kernels/train/trainer.hpp"

namespace gfdit::train {

struct run_options {
  std::filesystem::path model_dir;  // its config.json is the architecture (and the card written out)
  std::filesystem::path images, labels;
  std::int64_t data_limit = 0;  // > 0: the first pictures only
  train_options train;          // ignored when resuming: the checkpoint's own options continue
  std::filesystem::path out;    // the model folder written (and read when resuming)
  bool resume = false;
  std::int64_t stop_at = 0;  // > 0: stop after this step, the schedule still that of train.steps
  std::int64_t checkpoint_every = 0;
  // Read by rank 0 before every step when degree > 1: who of the pool takes it (membership.hpp).
  // Empty: every rank, always.
  std::filesystem::path members_file;
};

struct progress {
  log_row row;             // the step as train_log.csv records it (seconds: wall clock, not used by the step)
  std::int64_t steps = 0;  // the schedule's length
};

// The step a run stops after: stop_at when set, within the schedule of `steps`.
inline std::int64_t last_step(std::int64_t stop_at, std::int64_t steps) {
  return stop_at > 0 ? std::min(stop_at, steps) : steps;
}
// Whether the folder is written after `step`: every `every` steps (0: never) and after the last.
inline bool checkpoint_after(std::int64_t step, std::int64_t last, std::int64_t every) {
  return step == last || (every > 0 && step % every == 0);
}

// Everything a rank needs before its first step: the model card's text (copied into every
// checkpoint), the data, and the trainer at its initial or resumed state; `degree` workers must
// be able to split the batch. Errors name what is wrong (a diffusers folder, a state for
// another model, another data set when resuming, nothing left to do).
struct prepared_run {
  std::string card_json;
  std::unique_ptr<flow_dataset> data;  // the trainer reads it
  std::unique_ptr<train::trainer> model;
  std::int64_t last = 0;  // the step to stop after
};
result<prepared_run> prepare_run(const run_options& o, int degree);

// Every rank calls it with the same options; `on_step` and `on_note` (a membership change, a
// members file refused) are called on rank 0 only.
result<void> run_worker(const run_options& o, int rank, int degree, const std::filesystem::path& world_dir,
                        const std::function<void(const progress&)>& on_step,
                        const std::function<void(const std::string&)>& on_note = {});

}  // namespace gfdit::train
