#include "actors/train/train_params.hpp"

#include "actors/runtime/param_checks.hpp"

namespace gfdit::train_graph {

result<void> declare_run_params(context& ctx) {
  auto& p = ctx.params();
  using checks::at_least;
  const train::train_options d;
  for (auto r : {
           p.declare<std::string>("model", "", "a folder whose config.json is the architecture (and the card written)"),
           p.declare<std::string>("data", "/usr/share/datasets/fashion-mnist",
                                  "a folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz"),
           p.declare<std::int64_t>("limit", 0, "train on the first N pictures only (0: all)",
                                   at_least<std::int64_t>(0)),
           p.declare<std::string>("out", "", "the model folder written (and read when resuming)"),
           p.declare<bool>("resume", false, "continue the run saved in out, with its own options"),
           p.declare<std::int64_t>("pool", 1, "trainer processes (one World)", at_least<std::int64_t>(1)),
           p.declare<std::int64_t>("steps", d.steps, "steps of the schedule", at_least<std::int64_t>(1)),
           p.declare<std::int64_t>("stop_at", 0, "stop after this step (0: at the end)", at_least<std::int64_t>(0)),
           p.declare<std::int64_t>("batch", d.batch, "the global batch", at_least<std::int64_t>(1)),
           p.declare<double>("lr", d.adamw.lr, "peak learning rate", checks::within(0.0, 1.0)),
           p.declare<std::int64_t>("warmup", d.adamw.warmup, "steps of linear warm-up", at_least<std::int64_t>(1)),
           p.declare<std::int64_t>("seed", 0, "data order, label dropout, times and noise", at_least<std::int64_t>(0)),
           p.declare<std::int64_t>("init_seed", 0, "the initial weights", at_least<std::int64_t>(0)),
           p.declare<std::int64_t>("checkpoint_every", 1000, "write the folder every N steps (and at the end)",
                                   at_least<std::int64_t>(0)),
       })
    if (!r) return r;
  // Not while probing: a probe without values must succeed for `gfdit check` to learn the
  // declarations (and then run the checks that need no files, such as the batch and the pool).
  if (ctx.probing()) return {};
  if (p.get<std::string>("model").empty()) return make_error(errc::invalid_argument, "model: a folder is needed");
  if (p.get<std::string>("out").empty()) return make_error(errc::invalid_argument, "out: a folder is needed");
  return {};
}

train::run_options run_options_of(context& ctx) {
  auto& p = ctx.params();
  train::run_options o;
  o.model_dir = p.get<std::string>("model");
  const std::filesystem::path data = p.get<std::string>("data");
  o.images = data / "train-images-idx3-ubyte.gz";
  o.labels = data / "train-labels-idx1-ubyte.gz";
  o.data_limit = p.get<std::int64_t>("limit");
  o.out = p.get<std::string>("out");
  o.resume = p.get<bool>("resume");
  o.stop_at = p.get<std::int64_t>("stop_at");
  o.checkpoint_every = p.get<std::int64_t>("checkpoint_every");
  o.members_file = o.out / "members";
  o.train.steps = p.get<std::int64_t>("steps");
  o.train.batch = static_cast<int>(p.get<std::int64_t>("batch"));
  o.train.adamw.lr = static_cast<float>(p.get<double>("lr"));
  o.train.adamw.warmup = static_cast<int>(p.get<std::int64_t>("warmup"));
  o.train.seed = static_cast<std::uint64_t>(p.get<std::int64_t>("seed"));
  o.train.init_seed = static_cast<std::uint64_t>(p.get<std::int64_t>("init_seed"));
  return o;
}

int pool_of(context& ctx) { return static_cast<int>(ctx.params().get<std::int64_t>("pool")); }

std::string trainer_name(int rank) { return "trainer-" + std::to_string(rank); }

}  // namespace gfdit::train_graph
