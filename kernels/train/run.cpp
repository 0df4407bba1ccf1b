#include "kernels/train/run.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "common/text.hpp"
#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/train/checkpoint.hpp"
#include "kernels/train/membership.hpp"
#include "kernels/train/reduce.hpp"
#include "kernels/train/train_log.hpp"

namespace gfdit::train {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

result<prepared_run> prepare_run(const run_options& o, int degree) {
  auto card = dit::read_model_card(o.model_dir);
  if (!card) return card.err();
  if (card->layout != dit::weights_layout::gfdit)
    return make_error(errc::invalid_argument, "train: " + o.model_dir.string() +
                                                  " is a diffusers folder; training writes gfdit's layout from a "
                                                  "config.json");
  auto card_json = read_text(o.model_dir / "config.json", 1u << 20);  // copied into every checkpoint
  if (!card_json) return card_json.err();
  auto L = param_layout::of(card->config);
  if (!L) return L.err();
  train_state start;
  if (o.resume) {
    auto s = load_train_state(o.out, *L);
    if (!s) return s.err();
    start = std::move(*s);
  } else {
    start.options = o.train;
    start.params = initial_weights(*L, o.train.init_seed);
    start.state = adamw_init(start.params);
  }
  const train_options& opts = start.options;
  if (!tree_splits(opts.batch, degree))
    return make_error(errc::invalid_argument, "train: a global batch of " + std::to_string(opts.batch) +
                                                  " cannot be split over " + std::to_string(degree) +
                                                  " workers (each needs at least one sample)");
  const std::int64_t last = last_step(o.stop_at, opts.steps);
  if (start.state.step >= last)
    return make_error(errc::invalid_argument, "train: " + o.out.string() + " is at step " +
                                                  std::to_string(start.state.step) + ", nothing left to do up to " +
                                                  std::to_string(last));
  auto data = load_flow_dataset(card->config, o.images, o.labels, o.data_limit);
  if (!data) return data.err();
  if (o.resume && data->count != start.data_count)
    return make_error(errc::invalid_argument, "train: the run in " + o.out.string() + " drew from " +
                                                  std::to_string(start.data_count) + " pictures, this data set has " +
                                                  std::to_string(data->count) + " (--data, --limit)");
  prepared_run p;
  p.card_json = std::move(*card_json);
  p.data = std::make_unique<flow_dataset>(std::move(*data));
  auto t = trainer::create(std::move(*L), opts, *p.data, std::move(start.params), std::move(start.state));
  if (!t) return t.err();
  p.model = std::make_unique<trainer>(std::move(*t));
  p.last = last;
  return p;
}

result<void> run_worker(const run_options& o, int rank, int degree, const std::filesystem::path& world_dir,
                        const std::function<void(const progress&)>& on_step,
                        const std::function<void(const std::string&)>& on_note) {
  if (degree < 1 || rank < 0 || rank >= degree)
    return make_error(errc::invalid_argument, "train: rank " + std::to_string(rank) + " of " + std::to_string(degree));
  auto p = prepare_run(o, degree);
  if (!p) return p.err();
  trainer* t = p->model.get();
  const train_options& opts = t->options();
  const std::int64_t last = p->last;

  // Rank 0's record of each step (train_log.hpp): rows past the step it starts from (those of a
  // run that stopped after its last checkpoint, or of one that never reached a checkpoint) go.
  if (rank == 0) {
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);  // a failure shows at the first write
    if (auto r = keep_log_until(log_path(o.out), t->state().step); !r) return r;
  }
  auto report = [&](const step_report& rep, double secs, int workers) -> result<void> {
    const log_row row{rep.step, rep.loss, rep.grad_norm, rep.lr, secs, images_per_s(opts.batch, secs), workers};
    if (on_step) on_step(progress{row, opts.steps});
    if (auto r = append_log(log_path(o.out), row); !r) return r;
    if (!checkpoint_after(rep.step, last, o.checkpoint_every)) return {};
    if (auto r = save_checkpoint(o.out, p->card_json, *t); !r) return r;
    return draw_loss(o.out, opts.batch);
  };
  if (degree == 1) {
    while (t->state().step < last) {
      const auto t0 = std::chrono::steady_clock::now();
      auto rep = t->step(dp_group{});
      if (!rep) return rep.err();
      if (auto r = report(*rep, seconds_since(t0), 1); !r) return r;
    }
    return {};
  }

  coll::file_rendezvous rv(world_dir, rank, degree);
  coll::world_options wo;
  wo.channels = 1;
  wo.timeout = std::chrono::minutes(10);  // a step of a large model on a busy host is slow
  auto world = coll::World::create(rv, wo);
  if (!world) return world.err();
  coll::World& w = **world;
  std::vector<std::int32_t> everyone(static_cast<std::size_t>(degree));
  std::iota(everyone.begin(), everyone.end(), 0);
  auto pool = w.form(everyone, 0);
  if (!pool) return pool.err();
  members_file source(o.members_file, degree, opts.batch, on_note);
  std::vector<std::int32_t> taking;  // the ranks that took the last step (none before the first)
  coll::Group group;
  std::uint64_t epoch = 0;
  // Before every step rank 0 tells the pool the step and who takes it: [step, n, ranks...]. An
  // idle rank's own step count is stale, so the step comes from rank 0 too.
  const std::size_t record = static_cast<std::size_t>(degree) + 2;
  std::vector<std::int64_t> mine(record), all(rank == 0 ? record * static_cast<std::size_t>(degree) : 0);
  while (true) {
    if (rank == 0) {
      const auto members = source.members(t->state().step + 1);
      mine.assign(record, 0);
      mine[0] = t->state().step < last ? t->state().step : -1;  // -1: the run is over
      mine[1] = static_cast<std::int64_t>(members.size());
      std::copy(members.begin(), members.end(), mine.begin() + 2);
      for (int j = 0; j < degree; ++j)
        std::copy(mine.begin(), mine.end(), all.begin() + j * static_cast<std::ptrdiff_t>(record));
    }
    if (auto r = w.scatter(*pool, 0, all.data(), mine.data(), record * sizeof(std::int64_t)); !r) return r.err();
    if (mine[0] < 0) return {};
    if (mine[1] < 1 || mine[1] > degree)
      return make_error(errc::state, "train: rank 0 sent a group of " + std::to_string(mine[1]));
    const std::vector<std::int32_t> members(mine.begin() + 2, mine.begin() + 2 + mine[1]);
    if (members != taking) {
      auto g = w.form(members, ++epoch);
      if (!g) return g.err();
      group = *g;
      // Joiners take the weights and the optimizer's state from rank 0, which always takes part.
      for (const auto j : members) {
        if (taking.empty() || std::find(taking.begin(), taking.end(), j) != taking.end()) continue;
        if (rank == 0) {
          if (auto r = t->send_state(w, *pool, j); !r) return r;
        } else if (rank == j) {
          if (auto r = t->receive_state(w, *pool, 0, mine[0]); !r) return r;
        }
      }
      if (rank == 0 && on_note && !taking.empty())
        on_note("step " + std::to_string(mine[0] + 1) + ": the group re-forms with ranks " + ranks_text(members) +
                " (was " + ranks_text(taking) + ")");
      taking = members;
    }
    if (std::find(members.begin(), members.end(), rank) == members.end()) continue;  // idle this step
    const auto t0 = std::chrono::steady_clock::now();
    auto rep = t->step(dp_group{&w, group});
    if (!rep) return rep.err();
    if (rank == 0)
      if (auto r = report(*rep, seconds_since(t0), static_cast<int>(members.size())); !r) return r;
  }
}

}  // namespace gfdit::train
