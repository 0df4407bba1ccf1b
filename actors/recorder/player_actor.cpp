// gfdit.player: re-publishes a bag's envelopes into the live graph with forward(), so senders,
// sequence numbers and stamps are the recorded ones. Paced by the recorded wall stamps divided
// by `rate` (0: as fast as the graph takes them, in batches so the actor stays responsive).
//
// Standing in for an actor (`senders: A`, the player named A: `gfdit replay --replace`), the
// recorded outputs must not overtake the live inputs that caused them: with `gate`, a recorded
// message waits until the player has received the input it answered in the recording, i.e. the
// last earlier message of its trace (envelopes sent while handling a message carry its trace
// id) that was directed to A or published on a topic in `subscribe`. The live input matches by
// sender, trace id and type, counted, so the k-th such input releases what followed the k-th
// recorded one. A message released late by its cause delays the ones after it by as much. A
// gate not opened `gate_timeout_ms` after the message's time (at rate 0: after it started
// waiting) lets the message go anyway (counted and logged: the live actors did not send what
// they sent in the recording).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "actors/recorder/recorder_actor.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "bag/bag_reader.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

using steady = std::chrono::steady_clock;

// What identifies a live input across the recording and the replay.
using input_key = std::tuple<std::string, std::uint64_t, std::uint32_t>;  // sender, trace, type

input_key key_of(const envelope& env) { return {env.sender, env.trace_id, env.type_id}; }

// System requests are answered by the runtime itself and never reach an actor's handlers.
bool is_system_request(const envelope& env) {
  return env.is<msg::lifecycle_command>() || env.is<msg::parameter_get>() || env.is<msg::parameter_set>();
}

class player_actor final : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    auto& p = ctx.params();
    for (auto r :
         {p.declare<std::string>("path", "", "the bag to play"),
          p.declare<double>("rate", 1.0, "speed factor; 0: as fast as possible", checks::at_least(0.0)),
          p.declare<bool>("loop", false, "start again at the end"),
          p.declare<double>("start_s", 0.0, "skip the bag's first seconds", checks::at_least(0.0)),
          p.declare<double>("end_s", 0.0, "stop this many seconds after the bag's start (0: at its end)",
                            checks::at_least(0.0)),
          p.declare<std::string>("topics", "", "play only these topics"),
          p.declare<std::string>("actors", "", "play only messages of these actors"),
          p.declare<std::string>("senders", "", "play only messages sent by these actors (stand in for them)"),
          p.declare<std::string>("types", "", "play only these types"),
          p.declare<std::int64_t>("batch", 256, "messages per turn at rate 0", checks::at_least<std::int64_t>(1)),
          p.declare<bool>("stop_at_end", false, "ask the node to stop when done"),
          p.declare<std::string>("subscribe", "",
                                 "topics to receive (and drop), as the actor stood in for did; inputs for `gate`"),
          p.declare<bool>("gate", false, "hold each recorded message until the live input that caused it has arrived"),
          p.declare<std::int64_t>("gate_timeout_ms", 5000, "then send it anyway (counted)",
                                  checks::at_least<std::int64_t>(0)),
          p.declare<std::string>("done_file", "", "written (JSON counters) when everything is played")})
      if (!r) return r;
    path_ = p.get<std::string>("path");
    if (path_.empty()) return make_error(errc::invalid_argument, "player: parameter 'path' is required");
    auto r = bag::reader::open(path_);
    if (!r) return r.err();
    reader_ = std::move(*r);
    filter_.topics = bag::filter::split(p.get<std::string>("topics"));
    filter_.actors = bag::filter::split(p.get<std::string>("actors"));
    filter_.senders = bag::filter::split(p.get<std::string>("senders"));
    filter_.types = bag::filter::split(p.get<std::string>("types"));
    rate_ = p.get<double>("rate");
    loop_ = p.get<bool>("loop");
    const auto& ix = reader_->idx();
    begin_ns_ = ix.first_ns + static_cast<std::int64_t>(p.get<double>("start_s") * 1e9);
    const double end_s = p.get<double>("end_s");
    if (end_s > 0 && end_s <= p.get<double>("start_s"))
      return make_error(errc::invalid_argument,
                        "player: end_s (" + nlohmann::json(end_s).dump() + ") must be after start_s (" +
                            nlohmann::json(p.get<double>("start_s")).dump() + "), or 0 for the bag's end");
    end_ns_ = end_s > 0 ? ix.first_ns + static_cast<std::int64_t>(end_s * 1e9) : ix.last_ns;
    batch_ = static_cast<int>(p.get<std::int64_t>("batch"));
    stop_at_end_ = p.get<bool>("stop_at_end");
    done_file_ = p.get<std::string>("done_file");
    gate_timeout_ = std::chrono::milliseconds(p.get<std::int64_t>("gate_timeout_ms"));
    stood_ = {filter_.senders.begin(), filter_.senders.end()};
    const auto topics = bag::filter::split(p.get<std::string>("subscribe"));
    subscribed_ = {topics.begin(), topics.end()};
    if (p.get<bool>("gate")) {
      if (stood_.empty())
        return make_error(errc::invalid_argument, "player: 'gate' needs 'senders' (the actors stood in for)");
      if (auto g = find_gates(); !g) return g.err();
    }
    for (const auto& t : subscribed_) ctx.subscribe_raw(t, [this, &ctx](const envelope& env) { on_input(ctx, env); });
    ctx.on_unhandled([this, &ctx](const envelope& env) {
      if (env.kind == route::direct) on_input(ctx, env);
    });
    return {};
  }

  result<void> on_activate(context& ctx) override {
    restart();
    schedule(ctx, std::chrono::nanoseconds(0));
    return {};
  }

  result<void> on_deactivate(context&) override {
    ++generation_;  // pending steps of this run become no-ops
    return {};
  }

 private:
  struct gate {
    input_key key;
    std::uint64_t count = 0;  // the key's k-th occurrence
  };

  // One pass over the whole bag: for each message of a stood-in sender, the input that
  // preceded it in its trace.
  result<void> find_gates() {
    reader_->set_filter({});
    if (auto s = reader_->seek(0); !s) return s.err();
    std::map<input_key, std::uint64_t> seen;
    std::map<std::uint64_t, gate> last_input;  // trace -> its latest input
    while (true) {
      auto n = reader_->next();
      if (!n) return n.err();
      if (!*n) break;
      const envelope& env = (*n)->env;
      if (env.sender.empty() || env.sender[0] == '$') continue;  // markers, not messages
      if (stood_.count(env.sender)) {
        if (auto it = last_input.find(env.trace_id); it != last_input.end()) gates_[(*n)->index] = it->second;
        continue;
      }
      const bool input = (env.kind == route::direct && stood_.count(env.destination) && !is_system_request(env)) ||
                         (env.kind == route::topic && subscribed_.count(env.destination));
      if (!input) continue;
      const auto k = key_of(env);
      last_input[env.trace_id] = {k, ++seen[k]};
    }
    return {};
  }

  void on_input(context& ctx, const envelope& env) {
    if (stood_.count(env.sender)) return;  // our own (recorded) messages coming back
    ++received_[key_of(env)];
    ++inputs_;
    if (waiting_ && pending_ && released(*pending_)) schedule(ctx, std::chrono::nanoseconds(0));
  }

  bool released(const bag::record& r) const {
    auto g = gates_.find(r.index);
    if (g == gates_.end()) return true;
    auto it = received_.find(g->second.key);
    return it != received_.end() && it->second >= g->second.count;
  }

  // One step chain at a time: a new schedule replaces the pending one.
  void schedule(context& ctx, std::chrono::nanoseconds delay) {
    if (timer_) ctx.cancel(timer_);
    const auto gen = generation_;
    timer_ = ctx.after(delay, [this, &ctx, gen] {
      timer_ = 0;
      if (gen == generation_) step(ctx);
    });
  }

  void restart() {
    reader_->set_filter(filter_);
    (void)reader_->seek(0);
    pending_.reset();
    t0_ = steady::now();
    ++generation_;
  }

  void step(context& ctx) {
    int sent = 0;
    while (true) {
      if (!pending_) {
        auto n = reader_->next();
        if (!n) {
          ctx.log().error("bag '{}': {}", path_, n.err().what);
          return finish(ctx);
        }
        if (!*n || (*n)->env.time.wall_ns > end_ns_) {
          ctx.log().info("played {} messages from '{}' ({} not delivered, {} gate timeouts)", played_, path_, failed_,
                         gate_timeouts_);
          if (loop_) {
            restart();
            received_.clear();  // each pass waits for inputs of its own
            schedule(ctx, std::chrono::milliseconds(1));
            return;
          }
          return finish(ctx);
        }
        if ((*n)->env.time.wall_ns < begin_ns_) continue;
        pending_ = std::move(**n);
        held_since_.reset();
      }
      const auto now = steady::now();
      const auto due = rate_ > 0 ? t0_ + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                             static_cast<double>(pending_->env.time.wall_ns - begin_ns_) / rate_))
                                 : now;
      bool timed_out = false;
      if (!released(*pending_)) {
        if (!held_since_) held_since_ = now;
        // Paced, the wait counts from the message's own time: when the live run has diverged,
        // messages stuck behind causes that will not come time out together, not one by one.
        const auto deadline = (rate_ > 0 ? due : *held_since_) + gate_timeout_;
        if (now < deadline) {
          waiting_ = true;
          schedule(ctx, deadline - now);
          return;
        }
        timed_out = true;
        const auto& g = gates_.at(pending_->index);
        if (gate_timeouts_++ < 5)
          ctx.log().warn("message {} (seq {}) waited {} ms for input #{} from '{}' (trace {:x}): sent anyway",
                         pending_->index, pending_->env.seq, gate_timeout_.count(), g.count, std::get<0>(g.key),
                         std::get<1>(g.key));
      }
      waiting_ = false;
      if (rate_ > 0) {
        if (held_since_ && !timed_out && now > due) {  // released late by its cause: what follows keeps its spacing
          t0_ += now - due;
        } else if (due > now) {
          schedule(ctx, due - now);
          return;
        }
      } else if (sent >= batch_) {
        schedule(ctx, std::chrono::nanoseconds(0));
        return;
      }
      if (held_since_) ++gated_;
      if (auto r = ctx.forward(pending_->env); !r) {
        if (failed_++ < 5) ctx.log().warn("message {} not delivered: {}", pending_->index, r.err().what);
      }
      ++played_;
      ++sent;
      pending_.reset();
    }
  }

  void finish(context& ctx) {
    if (!done_file_.empty()) {
      // Written then renamed: whoever waits for the file never reads half of it.
      const std::string tmp = done_file_ + ".tmp";
      std::ofstream(tmp) << nlohmann::json{{"actor", ctx.name()},
                                           {"played", played_},
                                           {"not_delivered", failed_},
                                           {"gated", gated_},
                                           {"gate_timeouts", gate_timeouts_},
                                           {"inputs", inputs_}}
                                .dump()
                         << "\n";
      if (std::rename(tmp.c_str(), done_file_.c_str()) != 0) ctx.log().error("cannot write done_file '{}'", done_file_);
    }
    if (stop_at_end_) ctx.request_stop();
  }

  std::string path_, done_file_;
  std::unique_ptr<bag::reader> reader_;
  bag::filter filter_;
  double rate_ = 1.0;
  bool loop_ = false, stop_at_end_ = false;
  std::int64_t begin_ns_ = 0, end_ns_ = 0;
  int batch_ = 256;
  std::optional<bag::record> pending_;
  steady::time_point t0_;
  std::uint64_t generation_ = 0, played_ = 0, failed_ = 0;
  timer_id timer_ = 0;

  std::set<std::string> stood_, subscribed_;
  std::map<std::uint64_t, gate> gates_;  // bag index -> the input it waits for
  std::map<input_key, std::uint64_t> received_;
  std::chrono::milliseconds gate_timeout_{5000};
  std::optional<steady::time_point> held_since_;
  bool waiting_ = false;
  std::uint64_t gated_ = 0, gate_timeouts_ = 0, inputs_ = 0;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::player_actor, "gfdit.player");
