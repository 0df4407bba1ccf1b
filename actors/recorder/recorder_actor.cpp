#include "actors/recorder/recorder_actor.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "actors/recorder/handled_marker.hpp"
#include "actors/recorder/recorder_stats.hpp"
#include "actors/recorder/recorder_tap.hpp"
#include "actors/recorder/recording_queue.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "common/text.hpp"
#include "messages/catalog.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

// The stats message is a plugin-style addition to the vocabulary.
const bool stats_registered = [] {
  (void)catalog::global().add<msg::recorder_stats>();
  (void)catalog::global().add<msg::handled>();
  return true;
}();

class recorder_actor final : public actor, public tap_sink {
 public:
  result<void> on_configure(context& ctx) override {
    auto& p = ctx.params();
    for (auto r :
         {p.declare<std::string>("path", "", "the bag file to write (empty: record nothing)"),
          p.declare<bool>("overwrite", false, "replace a bag already at path (else that is an error)"),
          p.declare<std::string>("topics", "", "record only these topics (comma list)"),
          p.declare<std::string>("actors", "", "record only messages of these actors"),
          p.declare<std::string>("senders", "", "record only messages sent by these actors"),
          p.declare<std::string>("types", "", "record only these message types"),
          p.declare<std::string>("source", "tap",
                                 "tap (every envelope of this node) or subscribe (all topics of the graph)",
                                 std::function<std::string(const std::string&)>([](const std::string& s) {
                                   return s == "tap" || s == "subscribe" ? "" : "must be tap or subscribe";
                                 })),
          p.declare<std::string>("overflow", "block",
                                 "when the writer falls behind: block (backpressure) or drop (counted)",
                                 std::function<std::string(const std::string&)>([](const std::string& s) {
                                   return s == "block" || s == "drop" ? "" : "must be block or drop";
                                 })),
          p.declare<std::int64_t>("queue_mb", 64,
                                  "per sending thread: bytes waiting for the writer before overflow (copied records up "
                                  "to 16 MiB, large envelopes by reference)",
                                  checks::above<std::int64_t>(0)),
          p.declare<std::int64_t>("chunk_kb", 1024, "chunk size", checks::above<std::int64_t>(0)),
          p.declare<std::int64_t>("flush_ms", 200, "a partial chunk is written this often",
                                  checks::above<std::int64_t>(0)),
          p.declare<std::int64_t>("writer_nice", 0, "nice value of the writer thread (0..19)",
                                  checks::within<std::int64_t>(0, 19)),
          p.declare<std::string>("stats_topic", "recorder.stats", "where the live counters go"),
          p.declare<std::int64_t>("stats_ms", 1000, "how often", checks::above<std::int64_t>(0)),
          p.declare<std::string>("launch_file", "", "its text goes into the bag header"),
          p.declare<std::string>("launch_text", "", "launch file text for the header"),
          p.declare<std::string>("handled", "",
                                 "record the order in which these actors of this process handle their messages (comma "
                                 "list, * for all): what exact replay needs"),
          p.declare<std::string>(
              "parameters_of", "",
              "at activation, ask these actors for their parameters, so their values are in the bag (comma list)")})
      if (!r) return r;
    path_ = p.get<std::string>("path");
    if (path_.empty()) return {};  // off: a graph can carry a recorder that an argument turns on
    bag::filter f;
    f.topics = bag::filter::split(p.get<std::string>("topics"));
    f.actors = bag::filter::split(p.get<std::string>("actors"));
    f.senders = bag::filter::split(p.get<std::string>("senders"));
    f.types = bag::filter::split(p.get<std::string>("types"));
    std::string launch = p.get<std::string>("launch_text");
    const auto file = p.get<std::string>("launch_file");
    if (!file.empty()) {
      auto text = read_text(file);
      if (!text) return make_error(errc::io, "launch_file '" + file + "' cannot be read");
      launch = std::move(*text);
    }
    source_ = p.get<std::string>("source");
    auto h = bag::header::current(launch);
    h.meta = {{"recorder", ctx.name()}, {"source", source_}, {"filter", f.to_json()}};
    // Where the text came from: `replay --replace` launches that file when it still holds the
    // same text, so its $(dirname) and includes resolve as they did.
    if (!file.empty()) {
      std::error_code ec;
      h.meta["launch_file"] = std::filesystem::absolute(file, ec).lexically_normal().string();
    }
    // An earlier recording is data already accepted: not replaced unless asked.
    if (std::error_code ec; !p.get<bool>("overwrite") && std::filesystem::exists(path_, ec))
      return make_error(errc::invalid_argument,
                        "recorder: '" + path_ + "' exists already (remove it, or set overwrite: true)");
    if (ctx.probing()) return {};
    auto w = bag::writer::create(path_, std::move(h));
    if (!w) return w.err();
    bag::queue_options qo;
    qo.chunk_bytes = static_cast<std::size_t>(p.get<std::int64_t>("chunk_kb")) << 10;
    qo.max_queued_bytes = static_cast<std::size_t>(p.get<std::int64_t>("queue_mb")) << 20;
    qo.on_full = p.get<std::string>("overflow") == "drop" ? bag::overflow::drop : bag::overflow::block;
    qo.flush_every = std::chrono::milliseconds(p.get<std::int64_t>("flush_ms"));
    qo.writer_nice = static_cast<int>(p.get<std::int64_t>("writer_nice"));
    qo.keep = std::move(f);
    handled_ = bag::filter::split(p.get<std::string>("handled"));
    handled_all_ = std::find(handled_.begin(), handled_.end(), "*") != handled_.end();
    parameters_of_ = bag::filter::split(p.get<std::string>("parameters_of"));
    queue_ = std::make_unique<bag::recording_queue>(std::move(*w), std::move(qo));
    stats_topic_ = p.get<std::string>("stats_topic");
    if (source_ == "subscribe")
      ctx.subscribe_raw("*", [this](const envelope& env) {
        if (active_) queue_->push(std::make_shared<const envelope>(env));
      });
    // Record from configure on: peers may send before this node activates its actors (a
    // worker's hello), and what an actor holds until activation is part of its inputs.
    if (source_ == "tap" && recorder_tap_installed()) attach_tap_sink(this);
    return {};
  }

  result<void> on_activate(context& ctx) override {
    if (!queue_) return {};
    if (source_ == "tap") {
      if (!recorder_tap_installed())
        return make_error(errc::state, "recorder '" + ctx.name() +
                                           "': no node of this process has the recorder tap "
                                           "(install_recorder_tap(node) before start()), or use source: subscribe");
      attach_tap_sink(this);
    }
    active_ = true;
    stats_timer_ =
        ctx.every(std::chrono::milliseconds(ctx.params().get<std::int64_t>("stats_ms")), [this, &ctx] { report(ctx); });
    ctx.log().info("recording to '{}' (source {})", path_, source_);
    // The replies land in the bag: replay reads an actor's parameters from there.
    for (const auto& a : parameters_of_)
      ctx.request<msg::parameter_value>(a, msg::parameter_get{""}, std::chrono::seconds(10),
                                        [&ctx, a](result<msg::parameter_value> v) {
                                          if (!v)
                                            ctx.log().warn("parameters of '{}' not recorded: {}", a, v.err().what);
                                        });
    return {};
  }

  result<void> on_deactivate(context& ctx) override {
    if (!queue_) return {};
    // The tap stays attached until shutdown: the actors deactivated after this one still
    // finish what they are handling, and their outputs belong in the bag.
    active_ = false;
    ctx.cancel(stats_timer_);
    queue_->flush();
    report(ctx);
    return {};
  }

  void on_shutdown(context& ctx) override {
    detach_tap_sink(this);
    active_ = false;
    if (!queue_) return;
    auto r = queue_->stop();
    const auto c = queue_->counters();
    if (!r) ctx.log().error("bag '{}': {}", path_, r.err().what);
    ctx.log().info("bag '{}' closed: {} messages recorded, {} dropped", path_, c.recorded, c.dropped);
  }

  void on_envelope(const envelope_ptr& env, std::uint64_t stamp) override { queue_->push(env, stamp); }

  bool wants_handled() const override { return !handled_.empty(); }

  void on_handled(const envelope_ptr& env, const std::string& actor, std::uint64_t stamp) override {
    if (!handled_all_ && std::find(handled_.begin(), handled_.end(), actor) == handled_.end()) return;
    if (bag::is_handled_marker(*env)) return;
    queue_->push_handled(
        *env, actor,
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count(),
        stamp);
  }

 private:
  void report(context& ctx) {
    const auto c = queue_->counters();
    if (c.dropped > reported_drops_) {
      ctx.log().warn("dropped {} messages ({} in all): the writer cannot keep up with the bus",
                     c.dropped - reported_drops_, c.dropped);
      reported_drops_ = c.dropped;
    }
    if (!c.error.empty() && !error_logged_) {
      ctx.log().error("bag '{}': {}; every further message is dropped (and counted)", path_, c.error);
      error_logged_ = true;
    }
    (void)ctx.publish(stats_topic_, msg::recorder_stats{ctx.name(), path_, c.recorded, c.dropped, c.blocked, c.bytes,
                                                        c.chunks, c.queued_bytes, c.error});
  }

  std::unique_ptr<bag::recording_queue> queue_;
  std::vector<std::string> handled_, parameters_of_;
  bool handled_all_ = false;
  std::string path_, source_, stats_topic_;
  std::atomic<bool> active_{false};
  timer_id stats_timer_ = 0;
  std::uint64_t reported_drops_ = 0;
  bool error_logged_ = false;
};

}  // namespace

std::vector<std::string> recorder_actor_types() {
  (void)stats_registered;
  return {"gfdit.player", "gfdit.recorder"};
}

}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::recorder_actor, "gfdit.recorder");
