#include "kernels/train/run.hpp"

#include <chrono>
#include <memory>
#include <numeric>

#include "common/text.hpp"
#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/train/checkpoint.hpp"
#include "kernels/train/reduce.hpp"

namespace gfdit::train {

result<void> run_worker(const run_options& o, int rank, int degree, const std::filesystem::path& world_dir,
                        const std::function<void(const progress&)>& on_step) {
  if (degree < 1 || rank < 0 || rank >= degree)
    return make_error(errc::invalid_argument, "train: rank " + std::to_string(rank) + " of " + std::to_string(degree));
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
  const std::int64_t last = o.stop_at > 0 ? std::min(o.stop_at, opts.steps) : opts.steps;
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
  auto t = trainer::create(std::move(*L), opts, *data, std::move(start.params), std::move(start.state));
  if (!t) return t.err();

  std::unique_ptr<coll::file_rendezvous> rv;
  std::unique_ptr<coll::World> world;
  dp_group g;
  if (degree > 1) {
    rv = std::make_unique<coll::file_rendezvous>(world_dir, rank, degree);
    coll::world_options wo;
    wo.channels = 1;
    wo.timeout = std::chrono::minutes(10);  // a step of a large model on a busy host is slow
    auto w = coll::World::create(*rv, wo);
    if (!w) return w.err();
    world = std::move(*w);
    std::vector<std::int32_t> members(static_cast<std::size_t>(degree));
    std::iota(members.begin(), members.end(), 0);
    auto grp = world->form(members, 0);
    if (!grp) return grp.err();
    g = dp_group{world.get(), *grp};
  }
  while (t->state().step < last) {
    const auto t0 = std::chrono::steady_clock::now();
    auto rep = t->step(g);
    if (!rep) return rep.err();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rank != 0) continue;
    if (on_step) on_step(progress{*rep, secs, opts.batch, opts.steps});
    const bool due = o.checkpoint_every > 0 && rep->step % o.checkpoint_every == 0;
    if (due || rep->step == last)
      if (auto r = save_checkpoint(o.out, *card_json, *t); !r) return r;
  }
  return {};
}

}  // namespace gfdit::train
