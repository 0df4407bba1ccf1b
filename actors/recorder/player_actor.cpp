// gfdit.player: re-publishes a bag's envelopes into the live graph with forward(), so senders,
// sequence numbers and stamps are the recorded ones. Paced by the recorded wall stamps divided
// by `rate` (0: as fast as the graph takes them, in batches so the actor stays responsive).
#include <chrono>

#include "actors/recorder/bag_reader.hpp"
#include "actors/recorder/recorder_actor.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/registry.hpp"

namespace gfdit {
namespace {

class player_actor final : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    auto& p = ctx.params();
    for (auto r : {p.declare<std::string>("path", "", "the bag to play"),
                   p.declare<double>("rate", 1.0, "speed factor; 0: as fast as possible",
                                     std::function<std::string(const double&)>([](const double& v) { return v >= 0 ? "" : "must be >= 0"; })),
                   p.declare<bool>("loop", false, "start again at the end"),
                   p.declare<double>("start_s", 0.0, "skip the bag's first seconds"),
                   p.declare<double>("end_s", 0.0, "stop this many seconds after the bag's start (0: at its end)"),
                   p.declare<std::string>("topics", "", "play only these topics"),
                   p.declare<std::string>("actors", "", "play only messages of these actors"),
                   p.declare<std::string>("senders", "", "play only messages sent by these actors (stand in for them)"),
                   p.declare<std::string>("types", "", "play only these types"),
                   p.declare<std::int64_t>("batch", 256, "messages per turn at rate 0"),
                   p.declare<bool>("stop_at_end", false, "ask the node to stop when done")})
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
    end_ns_ = end_s > 0 ? ix.first_ns + static_cast<std::int64_t>(end_s * 1e9) : ix.last_ns;
    batch_ = static_cast<int>(p.get<std::int64_t>("batch"));
    stop_at_end_ = p.get<bool>("stop_at_end");
    return {};
  }

  result<void> on_activate(context& ctx) override {
    restart();
    ctx.after(std::chrono::nanoseconds(0), [this, &ctx] { step(ctx); });
    return {};
  }

  result<void> on_deactivate(context&) override {
    ++generation_;  // pending steps of this run become no-ops
    return {};
  }

 private:
  void restart() {
    reader_->set_filter(filter_);
    (void)reader_->seek(0);
    pending_.reset();
    t0_ = std::chrono::steady_clock::now();
    ++generation_;
  }

  void step(context& ctx) {
    const auto gen = generation_;
    int sent = 0;
    while (true) {
      if (!pending_) {
        auto n = reader_->next();
        if (!n) {
          ctx.log().error("bag '{}': {}", path_, n.err().what);
          return finish(ctx);
        }
        if (!*n || (*n)->env.time.wall_ns > end_ns_) {
          ctx.log().info("played {} messages from '{}' ({} not delivered)", played_, path_, failed_);
          if (loop_) {
            restart();
            ctx.after(std::chrono::milliseconds(1), [this, &ctx] { step(ctx); });
            return;
          }
          return finish(ctx);
        }
        if ((*n)->env.time.wall_ns < begin_ns_) continue;
        pending_ = std::move(**n);
      }
      if (rate_ > 0) {
        const auto due = t0_ + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                   static_cast<double>(pending_->env.time.wall_ns - begin_ns_) / rate_));
        const auto now = std::chrono::steady_clock::now();
        if (due > now) {
          ctx.after(due - now, [this, &ctx, gen] { if (gen == generation_) step(ctx); });
          return;
        }
      } else if (sent >= batch_) {
        ctx.after(std::chrono::nanoseconds(0), [this, &ctx, gen] { if (gen == generation_) step(ctx); });
        return;
      }
      if (auto r = ctx.forward(pending_->env); !r) {
        if (failed_++ < 5) ctx.log().warn("message {} not delivered: {}", pending_->index, r.err().what);
      }
      ++played_;
      ++sent;
      pending_.reset();
    }
  }

  void finish(context& ctx) {
    if (stop_at_end_) ctx.request_stop();
  }

  std::string path_;
  std::unique_ptr<bag::reader> reader_;
  bag::filter filter_;
  double rate_ = 1.0;
  bool loop_ = false, stop_at_end_ = false;
  std::int64_t begin_ns_ = 0, end_ns_ = 0;
  int batch_ = 256;
  std::optional<bag::record> pending_;
  std::chrono::steady_clock::time_point t0_;
  std::uint64_t generation_ = 0, played_ = 0, failed_ = 0;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::player_actor, "gfdit.player");
