// gfdit.train_coordinator: runs a training run's steps (launch/graphs/train.yaml). Once every
// trainer of the pool has said it is ready (in the World, at the same step), it sends each step
// to the ranks that take it: who, from OUT/members (kernels/train/membership.hpp) among the ranks
// alive; ranks whose state is behind (they sat steps out, or a step failed on them) first take the
// state of one that holds the current step. A trainer whose heartbeats stop is declared dead and
// leaves the pool: the step it was in fails on its peers (their collective times out), and the
// coordinator sends it again to those left, so the run goes on with the same bits. Per step: a
// train.metrics message, a row of OUT/train_log.csv and the progress on the log; the loss curve
// OUT/loss.svg at every checkpoint. It stops its process at the end (exit_on_done).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>

#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/train/train_params.hpp"
#include "kernels/train/membership.hpp"
#include "kernels/train/reduce.hpp"
#include "kernels/train/train_log.hpp"
#include "messages/membership.hpp"
#include "messages/train.hpp"

namespace gfdit {
namespace {

using clock_type = std::chrono::steady_clock;

class coordinator_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = train_graph::declare_run_params(ctx); !r) return r;
    auto& p = ctx.params();
    using checks::at_least;
    for (auto r : {
             p.declare<std::int64_t>("heartbeat_timeout_ms", 3000, "a trainer silent this long is dead",
                                     at_least<std::int64_t>(100)),
             p.declare<std::int64_t>("attempts", 3, "tries of one step before the run fails",
                                     at_least<std::int64_t>(1)),
             p.declare<std::int64_t>("ready_timeout_ms", 300000,
                                     "the run fails when a trainer is not ready this long after the start (one that "
                                     "failed to configure never is)",
                                     at_least<std::int64_t>(100)),
         })
      if (!r) return r;
    options_ = train_graph::run_options_of(ctx);
    pool_ = train_graph::pool_of(ctx);
    if (!options_.resume && !train::tree_splits(options_.train.batch, pool_))
      return make_error(errc::invalid_argument, "a global batch of " + std::to_string(options_.train.batch) +
                                                    " cannot be split over a pool of " + std::to_string(pool_));
    if (ctx.probing()) return {};
    ctx.on<msg::train_ready>([this, &ctx](const msg::train_ready& m, const envelope&) { ready(ctx, m); });
    ctx.on<msg::train_done>([this, &ctx](const msg::train_done& m, const envelope&) { done(ctx, m); });
    ctx.subscribe<msg::worker_heartbeat>("train.heartbeats", [this](const msg::worker_heartbeat& h, const envelope&) {
      if (h.worker >= 0 && h.worker < pool_) last_beat_[h.worker] = clock_type::now();
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    ctx.after(std::chrono::milliseconds(ctx.params().get<std::int64_t>("ready_timeout_ms")), [this, &ctx] {
      if (started_) return;
      std::vector<std::int32_t> missing;
      for (int r = 0; r < pool_; ++r)
        if (!at_.count(r)) missing.push_back(r);
      fail(ctx, "trainers " + train::ranks_text(missing) + " are not ready (their logs say why)");
    });
    const auto timeout = std::chrono::milliseconds(ctx.params().get<std::int64_t>("heartbeat_timeout_ms"));
    ctx.every(timeout / 4, [this, &ctx, timeout] {
      const auto now = clock_type::now();
      for (auto& [rank, at] : last_beat_)
        if (alive_.count(rank) && now - at > timeout) {
          ctx.log().error("trainer {} sent no heartbeat for {} ms: it leaves the run", rank, timeout.count());
          alive_.erase(rank);
          waiting_.erase(rank);
          if (started_ && waiting_.empty() && in_step_) complete(ctx);
        }
    });
    return {};
  }

 private:
  void ready(context& ctx, const msg::train_ready& m) {
    if (m.rank < 0 || m.rank >= pool_) return ctx.log().warn("train.ready from rank {}, not in the pool", m.rank);
    if (started_) return ctx.log().warn("trainer {} is ready after the start: a new process cannot join", m.rank);
    at_[m.rank] = m.step;
    ready_[m.rank] = m;
    last_beat_[m.rank] = clock_type::now();
    if (static_cast<int>(at_.size()) < pool_) return;
    // The run's own schedule and batch (a resumed run keeps those of its checkpoint).
    const msg::train_ready& first = ready_.begin()->second;
    for (const auto& [r, t] : ready_)
      if (t.step != first.step || t.data_count != first.data_count || t.steps != first.steps || t.batch != first.batch)
        return fail(ctx, "the trainers start from different states (rank " + std::to_string(r) + ": step " +
                             std::to_string(t.step) + " of " + std::to_string(t.steps) + ", batch " +
                             std::to_string(t.batch) + "; rank " + std::to_string(first.rank) + ": step " +
                             std::to_string(first.step) + " of " + std::to_string(first.steps) + ", batch " +
                             std::to_string(first.batch) + ")");
    options_.train.steps = first.steps;
    options_.train.batch = static_cast<int>(first.batch);
    if (!train::tree_splits(options_.train.batch, pool_))
      return fail(ctx, "a global batch of " + std::to_string(first.batch) + " cannot be split over a pool of " +
                           std::to_string(pool_));
    plan_ = std::make_unique<train::members_file>(options_.members_file, pool_, options_.train.batch,
                                                  [&ctx](const std::string& note) { ctx.log().warn("{}", note); });
    started_ = true;
    step_ = saved_ = at_.begin()->second;
    for (int r = 0; r < pool_; ++r) alive_.insert(r);
    std::error_code ec;
    std::filesystem::create_directories(options_.out, ec);  // a failure shows at the first write
    if (auto k = train::keep_log_until(train::log_path(options_.out), step_); !k) return fail(ctx, k.err().what);
    ctx.log().info("{} trainers ready at step {}: training to step {}", pool_, step_, last());
    next(ctx);
  }

  std::int64_t last() const { return train::last_step(options_.stop_at, options_.train.steps); }

  // The folder of step N is written when step N + 1 is sent (or alone after the last step), so
  // it is never ahead of the log: the row of N is on disk before a checkpoint of N can be.
  void next(context& ctx) {
    msg::train_step s;
    s.step = step_;
    s.checkpoint = step_ > saved_ && train::checkpoint_after(step_, last(), options_.checkpoint_every);
    if (step_ >= last() && !s.checkpoint) return finish(ctx);
    std::vector<std::int32_t> members;  // none: the checkpoint alone
    if (step_ < last()) {
      for (auto r : plan_->members(step_ + 1))
        if (alive_.count(r)) members.push_back(r);
      if (members.empty())
        return fail(ctx, "no trainer of the plan for step " + std::to_string(step_ + 1) + " is alive");
    }
    s.source = -1;
    for (auto r : alive_)
      if (at_[r] == step_) {
        s.source = r;
        break;
      }
    for (auto r : members)
      if (at_[r] != step_) s.joiners.push_back(r);
    if (s.source < 0) return fail(ctx, "no trainer alive holds step " + std::to_string(step_));
    if (!members.empty() && members != members_) {
      if (!members_.empty())
        ctx.log().info("step {}: the group re-forms with ranks {} (was {})", step_ + 1, train::ranks_text(members),
                       train::ranks_text(members_));
      members_ = members;
      ++epoch_;
    }
    s.members = members;
    s.epoch = epoch_;
    waiting_.clear();
    waiting_.insert(members.begin(), members.end());
    waiting_.insert(s.source);
    for (auto r : waiting_) (void)ctx.send(train_graph::trainer_name(r), s);
    answers_.clear();
    sent_ = s;
    in_step_ = true;
  }

  void done(context& ctx, const msg::train_done& d) {
    if (!in_step_ || !waiting_.count(d.rank)) return;
    waiting_.erase(d.rank);
    at_[d.rank] = d.step;
    if (!d.ok) ctx.log().warn("trainer {} failed step {}: {}", d.rank, step_ + 1, d.error);
    answers_.push_back(d);
    if (waiting_.empty()) complete(ctx);
  }

  // Every rank asked has answered or is dead: the step is taken where any member took it.
  // A checkpoint asked for counts only when its writer, the source, says it wrote it.
  void complete(context& ctx) {
    in_step_ = false;
    const bool save_only = sent_.members.empty();
    const bool saved = sent_.checkpoint && std::any_of(answers_.begin(), answers_.end(), [&](const msg::train_done& a) {
                         return a.ok && a.rank == sent_.source && alive_.count(a.rank);
                       });
    if (saved) saved_ = step_;
    const msg::train_done* took = nullptr;
    for (const auto& a : answers_)
      if (a.ok && a.step == step_ + 1 && alive_.count(a.rank) && !took) took = &a;
    if ((sent_.checkpoint && !saved) || (!save_only && !took)) {
      if (++failures_ >= ctx.params().get<std::int64_t>("attempts"))
        return fail(
            ctx, (save_only ? "the checkpoint of step " + std::to_string(step_) : "step " + std::to_string(step_ + 1)) +
                     " failed " + std::to_string(failures_) + " times");
      return next(ctx);
    }
    failures_ = 0;
    if (save_only) return finish(ctx);
    ++step_;
    const train::log_row row{step_,
                             took->loss,
                             took->grad_norm,
                             took->lr,
                             took->seconds,
                             train::images_per_s(options_.train.batch, took->seconds),
                             static_cast<int>(members_.size())};
    (void)ctx.publish("train.metrics", msg::train_metrics{row.step, options_.train.steps, row.loss, row.grad_norm,
                                                          row.lr, row.seconds, row.images_per_s, row.workers});
    ctx.log().info("{}", train::progress_text(row, options_.train.steps));
    if (auto r = train::append_log(train::log_path(options_.out), row); !r) return fail(ctx, r.err().what);
    if (train::checkpoint_after(step_, last(), options_.checkpoint_every))
      if (auto r = train::draw_loss(options_.out, options_.train.batch); !r) return fail(ctx, r.err().what);
    next(ctx);
  }

  void finish(context& ctx) {
    ctx.log().info("trained to step {}: {} (loss curve {}/loss.svg)", step_, options_.out.string(),
                   options_.out.string());
    ctx.request_stop();
  }

  // The run cannot go on: the process ends with status 2, so its launch fails (a requested
  // stop always exits 0, and the launcher stops the other processes when this one exits).
  [[noreturn]] void fail(context& ctx, const std::string& why) {
    ctx.log().error("training stops: {}", why);
    ctx.log().flush();
    std::_Exit(2);
  }

  train::run_options options_;
  int pool_ = 1;
  std::unique_ptr<train::members_file> plan_;
  std::map<std::int32_t, std::int64_t> at_;  // each rank's step
  std::map<std::int32_t, msg::train_ready> ready_;
  std::map<std::int32_t, clock_type::time_point> last_beat_;
  std::set<std::int32_t> alive_, waiting_;
  std::vector<std::int32_t> members_;
  std::vector<msg::train_done> answers_;
  msg::train_step sent_;
  std::int64_t step_ = 0, failures_ = 0, saved_ = 0;  // saved_: the step of the last checkpoint
  std::uint64_t epoch_ = 0;
  bool started_ = false, in_step_ = false;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::coordinator_actor, "gfdit.train_coordinator");
