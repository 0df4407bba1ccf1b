// gfdit.trainer: one rank of a training run (launch/graphs/train.yaml). At configure it loads
// the data and its weights (initial, or the checkpoint when resuming); once the graph is wired
// it joins the run's World through the world hub, says where it stands (train.ready) and beats
// on train.heartbeats. Each train.step from the coordinator runs on a thread of its own (steps
// and collectives block): joiners take the state from the step's source, the members take the
// step as one group (the source writes the checkpoint first, when asked); the answer is a
// train.done.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>

#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/train/train_params.hpp"
#include "actors/worker/serial_executor.hpp"
#include "actors/worker/world_joiner.hpp"
#include "kernels/train/checkpoint.hpp"
#include "messages/membership.hpp"
#include "messages/train.hpp"
#include "messages/world.hpp"

namespace gfdit {
namespace {

bool has(const std::vector<std::int32_t>& v, std::int32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

class trainer_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = train_graph::declare_run_params(ctx); !r) return r;
    auto& p = ctx.params();
    using checks::at_least;
    for (auto r : {
             p.declare<std::int64_t>("rank", 0, "this trainer's rank in the pool", at_least<std::int64_t>(0)),
             p.declare<std::string>("coordinator", "coordinator", "the actor that says which step to take"),
             p.declare<std::string>("world_hub", "membership", "the actor hosting the world hub"),
             p.declare<std::string>("world", "train", "the World's name at the hub"),
             p.declare<std::int64_t>("collective_timeout_ms", 30000,
                                     "how long a collective waits for a peer (a dead peer fails the step after it)",
                                     at_least<std::int64_t>(100)),
             p.declare<std::int64_t>("heartbeat_ms", 200, "", at_least<std::int64_t>(10)),
         })
      if (!r) return r;
    rank_ = static_cast<int>(p.get<std::int64_t>("rank"));
    pool_ = train_graph::pool_of(ctx);
    if (rank_ >= pool_)
      return make_error(errc::invalid_argument,
                        "rank " + std::to_string(rank_) + " is not in a pool of " + std::to_string(pool_));
    coordinator_ = p.get<std::string>("coordinator");
    options_ = train_graph::run_options_of(ctx);
    if (ctx.probing()) return {};
    auto run = train::prepare_run(options_, 1);  // the pool's size does not matter until a step
    if (!run) return run.err();
    run_ = std::move(*run);
    ctx.on<msg::train_step>([this, &ctx](const msg::train_step& s, const envelope&) { take(ctx, s); });
    ctx.on<msg::world_blobs>([this](const msg::world_blobs& m, const envelope&) {
      if (joiner_) joiner_->deliver(m);
    });
    ctx.on_delivery_failure([this](const error& e, const envelope& env) {
      if (joiner_) joiner_->on_delivery_failure(e, env.type_id);
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    if (world_ || joiner_) return {};
    auto& p = ctx.params();
    const auto timeout = std::chrono::milliseconds(p.get<std::int64_t>("collective_timeout_ms"));
    auto pump = ctx.waker([this, &ctx] {
      auto done = joiner_ ? joiner_->poll(ctx) : std::nullopt;
      if (!done) return;
      joiner_.reset();
      if (!*done) {
        ctx.log().error("joining the training World failed, stopping: {}", done->err().what);
        ctx.request_stop();
        return;
      }
      world_ = std::move(joined_);
      std::vector<std::int32_t> all(static_cast<std::size_t>(pool_));
      for (int r = 0; r < pool_; ++r) all[static_cast<std::size_t>(r)] = r;
      pool_group_ = *world_->form(all, 0);
      ctx.log().info("rank {} of {} in the World, at step {}", rank_, pool_, run_.model->state().step);
      const auto& opts = run_.model->options();
      (void)ctx.send(coordinator_,
                     msg::train_ready{rank_, run_.model->state().step, run_.data->count, opts.steps, opts.batch});
      ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("heartbeat_ms")), [this, &ctx] {
        (void)ctx.publish("train.heartbeats", msg::worker_heartbeat{rank_, ++beats_});
      });
    });
    joiner_ = std::make_unique<world_joiner>(
        p.get<std::string>("world_hub"), p.get<std::string>("world"), rank_, pool_,
        [this, timeout](coll::rendezvous& rv) -> result<void> {
          coll::world_options wo;
          wo.channels = 1;
          wo.timeout = timeout;
          auto w = coll::World::create(rv, wo);
          if (!w) return w.err();
          joined_ = std::move(*w);
          return {};
        },
        std::move(pump));
    answer_ = ctx.waker([this, &ctx] {
      std::deque<msg::train_done> done;
      {
        std::lock_guard lock(mu_);
        done.swap(answers_);
      }
      for (const auto& d : done) (void)ctx.send(coordinator_, d);
    });
    return {};
  }

  void on_shutdown(context&) override {
    joiner_.reset();
    stopping_ = true;  // the running step ends at its next sample, unapplied
    steps_.reset();
  }

 private:
  // On the actor thread: the step runs on the executor, its answer comes back through answer_.
  void take(context& ctx, const msg::train_step& s) {
    if (!steps_) return;  // shutting down
    if (!world_) {
      ctx.log().warn("train.step {} before this trainer is in the World: ignored", s.step);
      return;
    }
    steps_->post([this, s] {
      msg::train_done d = run_step(s);
      {
        std::lock_guard lock(mu_);
        answers_.push_back(std::move(d));
      }
      answer_();
    });
  }

  // On the executor's thread.
  msg::train_done run_step(const msg::train_step& s) {
    train::trainer& t = *run_.model;
    msg::train_done d;
    d.rank = rank_;
    auto fail = [&](const std::string& what) {
      d.ok = false;
      d.error = what;
      d.step = t.state().step;
      return d;
    };
    if (rank_ == s.source)
      for (auto j : s.joiners)
        if (j != rank_)
          if (auto r = t.send_state(*world_, pool_group_, j); !r) return fail("sending the state: " + r.err().what);
    if (has(s.joiners, rank_) && s.source != rank_)
      if (auto r = t.receive_state(*world_, pool_group_, s.source, s.step); !r)
        return fail("receiving the state: " + r.err().what);
    if (s.checkpoint && rank_ == s.source) {
      if (t.state().step != s.step)
        return fail("asked for the checkpoint of step " + std::to_string(s.step) + " at step " +
                    std::to_string(t.state().step));
      if (auto r = train::save_checkpoint(options_.out, run_.card_json, t); !r)
        return fail("writing the checkpoint: " + r.err().what);
    }
    if (!has(s.members, rank_)) {
      d.step = t.state().step;
      return d;
    }
    if (t.state().step != s.step)
      return fail("asked for step " + std::to_string(s.step + 1) + " at step " + std::to_string(t.state().step));
    auto g = world_->form(s.members, s.epoch);
    if (!g) return fail(g.err().what);
    const auto t0 = std::chrono::steady_clock::now();
    auto rep = t.step(train::dp_group{world_.get(), *g}, &stopping_);
    if (!rep) return fail(rep.err().what);
    d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    d.step = t.state().step;
    d.loss = rep->loss, d.grad_norm = rep->grad_norm, d.lr = rep->lr;
    return d;
  }

  int rank_ = 0, pool_ = 1;
  std::string coordinator_;
  train::run_options options_;
  train::prepared_run run_;
  std::unique_ptr<coll::World> joined_, world_;  // joined_: written by the joiner's thread
  coll::Group pool_group_;
  std::unique_ptr<world_joiner> joiner_;
  std::uint64_t beats_ = 0;
  std::function<void()> answer_;
  std::mutex mu_;
  std::deque<msg::train_done> answers_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<serial_executor> steps_ = std::make_unique<serial_executor>();  // last: stops first
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::trainer_actor, "gfdit.trainer");
