// Replay: a deterministic core recorded in a live node and re-driven from the bag gives
// "identical"; a deliberately changed core diverges at the first affected output.
#include <gtest/gtest.h>

#include "actors/recorder/handled_marker.hpp"
#include "actors/recorder/recorder_actor.hpp"
#include "actors/recorder/recorder_tap.hpp"
#include "actors/recorder/replay.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "bag/bag_writer.hpp"
#include "launch/cli/bag_main.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"
#include "tests/bag/bag_test_support.hpp"

namespace gfdit {
namespace {

using testing::collector;
using testing::lambda_actor;
using namespace std::chrono_literals;

// A toy control-plane core: sums the counts of the pings it is sent and answers each with the
// running total and the input's stamp (its only notion of time); on a heartbeat it publishes
// the total. `skew_after` > 0 makes a deliberately changed core: from that ping on it adds 1.
class counter_core final : public replayable_core {
 public:
  explicit counter_core(std::uint64_t skew_after = 0) : skew_after_(skew_after) {}
  std::vector<envelope> feed(const envelope& in) override {
    std::vector<envelope> out;
    if (auto p = open<msg::ping>(in)) {
      total_ += p->count;
      if (skew_after_ && ++pings_ >= skew_after_) total_ += 1;
      out.push_back(make(route::direct, in.sender, msg::pong{total_, std::to_string(in.time.wall_ns / 1000)}));
    } else if (in.is<msg::heartbeat>()) {
      out.push_back(make(route::topic, "counter.total", msg::pong{total_, ""}));
    }
    return out;
  }
  nlohmann::json state() const override { return {{"total", total_}}; }

 private:
  template <class T>
  static envelope make(route k, std::string dest, const T& m) {
    envelope e;
    e.kind = k;
    e.destination = std::move(dest);
    e.type_id = type_id_of<T>;
    e.version = T::type_version;
    e.payload = encode(m);
    return e;
  }
  std::uint64_t total_ = 0, pings_ = 0, skew_after_ = 0;
};

GFDIT_REGISTER_REPLAYABLE_CORE("test.counter", [](const replay_params&) -> result<std::unique_ptr<replayable_core>> {
  return std::unique_ptr<replayable_core>(std::make_unique<counter_core>());
});
GFDIT_REGISTER_REPLAYABLE_CORE("test.counter.changed",
                               [](const replay_params& p) -> result<std::unique_ptr<replayable_core>> {
                                 return std::unique_ptr<replayable_core>(std::make_unique<counter_core>(
                                     std::stoull(p.options.value("skew_after", std::string("51")))));
                               });

// The shell: binds the core to the runtime, as every control-plane actor does.
class counter_actor final : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    auto run = [this, &ctx](const envelope& e) {
      for (const auto& o : core_.feed(e))
        (void)ctx.send_raw(o.kind, o.destination, o.type_id, o.version, o.payload, o.correlation);
    };
    ctx.on<msg::ping>([run](const msg::ping&, const envelope& e) { run(e); });
    ctx.on<msg::heartbeat>([run](const msg::heartbeat&, const envelope& e) { run(e); });
    return {};
  }

 private:
  counter_core core_;
};

constexpr std::uint64_t pings = 300;

// Records a live run: "source" sends pings and heartbeats to "counter" and waits for answers.
// `handled`: the recorder's parameter (whose dispatch order it notes).
std::string record_run(const std::string& handled = "") {
  const auto path = testing::temp_path("replay");
  collector<std::uint64_t> answers;
  auto nd = node::create({.name = "rp", .bind = testing::unique_ipc("rp")});
  EXPECT_TRUE(nd);
  install_recorder_tap(**nd);
  (void)recorder_actor_types();
  EXPECT_TRUE(
      (*nd)->add("recorder", actor_registry::global().make("gfdit.recorder"), {{"path", path}, {"handled", handled}}));
  EXPECT_TRUE((*nd)->add("counter", std::make_unique<counter_actor>()));
  EXPECT_TRUE((*nd)->add("source", std::make_unique<lambda_actor>(
                                       [&](context& ctx) {
                                         ctx.on<msg::pong>(
                                             [&](const msg::pong& p, const envelope&) { answers.push(p.count); });
                                         return result<void>{};
                                       },
                                       [&](context& ctx) {
                                         for (std::uint64_t i = 1; i <= pings; ++i) {
                                           (void)ctx.send("counter", msg::ping{i * 3 % 17, ""});
                                           if (i % 10 == 0) (void)ctx.send("counter", msg::heartbeat{"source", i});
                                         }
                                         return result<void>{};
                                       })));
  EXPECT_TRUE((*nd)->start());
  EXPECT_TRUE(answers.wait_for(pings, 20s));
  (*nd)->stop();
  return path;
}

TEST(replay, the_recorded_core_replays_identically) {
  const auto path = record_run();
  auto o = replay(path, "counter", "test.counter");
  ASSERT_TRUE(o) << o.err().what;
  EXPECT_FALSE(o->first) << o->first->to_json().dump(2);
  EXPECT_EQ(o->inputs, pings + pings / 10);
  EXPECT_EQ(o->outputs, pings + pings / 10);
  auto tool = testing::run_tool(replay_main, {"replay", path, "--actor", "counter", "--core", "test.counter"});
  EXPECT_EQ(tool.rc, 0);
  EXPECT_EQ(tool.out, "identical (" + std::to_string(pings + pings / 10) + " messages)\n");
}

TEST(replay, a_changed_core_diverges_at_the_first_affected_output) {
  const auto path = record_run();
  auto o = replay(path, "counter", "test.counter.changed");
  ASSERT_TRUE(o) << o.err().what;
  ASSERT_TRUE(o->first);
  const auto& d = *o->first;
  // The 51st ping's answer is the first affected output; before it come 50 answers and the
  // heartbeats after pings 10..50 (5), all equal.
  EXPECT_EQ(d.index, 55u);
  EXPECT_EQ(o->outputs, 55u);
  ASSERT_TRUE(d.expected && d.actual);
  auto exp = open<msg::pong>(*d.expected);
  auto act = open<msg::pong>(*d.actual);
  ASSERT_TRUE(exp && act);
  std::uint64_t sum = 0;
  for (std::uint64_t i = 1; i <= 51; ++i) sum += i * 3 % 17;
  EXPECT_EQ(exp->count, sum);
  EXPECT_EQ(act->count, sum + 1);
  EXPECT_EQ(exp->data, act->data);  // the recorded stamp went in as time both times

  auto tool = testing::run_tool(replay_main, {"replay", path, "--actor", "counter", "--core", "test.counter.changed"});
  EXPECT_EQ(tool.rc, 1);
  auto j = nlohmann::json::parse(tool.out);
  EXPECT_EQ(j["index"], 55);
  EXPECT_EQ(j["expected"]["payload"]["count"], sum);
  EXPECT_EQ(j["actual"]["payload"]["count"], sum + 1);
  EXPECT_EQ(j["expected"]["type"], "example.pong");

  // A later skew moves the divergence with it.
  auto later = replay(path, "counter", "test.counter.changed", {{"skew_after", "200"}});
  ASSERT_TRUE(later && later->first);
  EXPECT_EQ(later->first->index, 199u + 19u);
}

TEST(replay, the_stepper_steps_runs_to_a_type_shows_state_and_finishes) {
  const auto path = record_run();
  const std::string commands = "n\ns\nt system.heartbeat\nr 100\nr\n";
  auto tool = testing::run_tool(replay_main, {"replay", path, "--actor", "counter", "--core", "test.counter", "--step"},
                                &commands);
  EXPECT_EQ(tool.rc, 0);
  const auto& out = tool.out;
  EXPECT_NE(out.find("330 inputs, 330 recorded outputs"), std::string::npos) << out;
  EXPECT_NE(out.find("input 0 (bag index"), std::string::npos) << out;
  EXPECT_NE(out.find("\"total\": 3"), std::string::npos) << out;         // after ping 1 (count 3)
  EXPECT_NE(out.find("input 10 (bag index"), std::string::npos) << out;  // the first heartbeat
  EXPECT_NE(out.find("\"destination\":\"counter.total\""), std::string::npos) << out;
  EXPECT_NE(out.find("input 99 (bag index"), std::string::npos) << out;
  EXPECT_NE(out.find("identical (330 messages)"), std::string::npos) << out;
  // A changed core: the stepper stops at the divergence.
  const std::string run = "r\n";
  auto bad = testing::run_tool(
      replay_main, {"replay", path, "--actor", "counter", "--core", "test.counter.changed", "--step"}, &run);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("divergence: {"), std::string::npos) << bad.out;
}

TEST(replay, the_stepper_takes_long_commands_and_refuses_bad_ones_where_it_stands) {
  const auto path = record_run();
  const std::string commands =
      "next\nrun abc\nrun 5x\nrun 999\ntype no.such.type\nrun 1\nfly\nstate\nrun 20\ntype system.heartbeat\nquit\n";
  auto tool = testing::run_tool(replay_main, {"replay", path, "--actor", "counter", "--core", "test.counter", "--step"},
                                &commands);
  EXPECT_EQ(tool.rc, 0);
  const auto& out = tool.out;
  EXPECT_NE(out.find("input 0 (bag index"), std::string::npos) << out;
  EXPECT_NE(out.find("run: 'abc' is not an input number (0..330)"), std::string::npos) << out;
  EXPECT_NE(out.find("run: '5x' is not an input number"), std::string::npos) << out;
  EXPECT_NE(out.find("run: no input 999, the replay has 330"), std::string::npos) << out;
  EXPECT_NE(out.find("type: no input of type 'no.such.type' from input 1 on"), std::string::npos) << out;
  EXPECT_NE(out.find("run: at input 1 already, and a replay does not go back"), std::string::npos) << out;
  EXPECT_NE(out.find("commands: n|next"), std::string::npos) << out;  // "fly"
  // None of that moved it: the state is still the first ping's, and the prompt still at 1.
  EXPECT_NE(out.find("\"total\": 3"), std::string::npos) << out;
  EXPECT_EQ(out.find("[2/330]"), std::string::npos) << out;
  EXPECT_NE(out.find("input 19 (bag index"), std::string::npos) << out;  // run 20
  EXPECT_NE(out.find("input 21 (bag index"), std::string::npos) << out;  // the heartbeat after ping 20
  EXPECT_EQ(out.find("identical"), std::string::npos) << out;            // quit before the end
}

TEST(replay, dispatch_markers_give_the_inputs_in_the_order_the_actor_handled_them) {
  const auto path = record_run("counter");
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  counter_core core;
  auto s = load_script(**r, "counter", core);
  ASSERT_TRUE(s) << s.err().what;
  EXPECT_TRUE(s->dispatch_order);
  ASSERT_EQ(s->inputs.size(), pings + pings / 10);
  // The markers, in bag order, name exactly these inputs in this order.
  std::vector<std::string> marked;
  (*r)->set_filter({});
  ASSERT_TRUE((*r)->seek(0));
  while (true) {
    auto n = (*r)->next();
    ASSERT_TRUE(n);
    if (!*n) break;
    if (!bag::is_handled_marker((*n)->env) || (*n)->env.destination != "counter") continue;
    auto m = decode<msg::handled>((*n)->env.payload);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->actor, "counter");
    if (m->sender == "source") marked.push_back(bag::handled_key(*m));
  }
  ASSERT_EQ(marked.size(), s->inputs.size());
  for (std::size_t i = 0; i < marked.size(); ++i) EXPECT_EQ(marked[i], bag::handled_key(s->inputs[i].env)) << i;
  auto o = replay(path, "counter", "test.counter");
  ASSERT_TRUE(o) << o.err().what;
  EXPECT_FALSE(o->first);
  EXPECT_EQ(o->outputs, pings + pings / 10);

  // A bag without one of the messages a marker points at: an error, never a silent skip.
  const auto cut = testing::temp_path("replay-cut");
  {
    auto w = bag::writer::create(cut, (*r)->head());
    ASSERT_TRUE(w);
    (*r)->set_filter({});
    ASSERT_TRUE((*r)->seek(0));
    bool left_out = false;
    while (true) {
      auto n = (*r)->next();
      ASSERT_TRUE(n);
      if (!*n) break;
      if (!left_out && (*n)->env.sender == "source" && (*n)->env.is<msg::ping>()) {
        left_out = true;
        continue;
      }
      ASSERT_TRUE((*w)->write((*n)->env));
    }
    ASSERT_TRUE((*w)->close());
  }
  auto bad = replay(cut, "counter", "test.counter");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.err().what.find("1 dispatch marker(s) of 'counter'"), std::string::npos) << bad.err().what;
}

TEST(replay, unknown_cores_and_actors_are_errors) {
  const auto path = record_run();
  auto o = replay(path, "counter", "no.such.core");
  ASSERT_FALSE(o);
  EXPECT_NE(o.err().what.find("test.counter"), std::string::npos) << o.err().what;
  auto tool = testing::run_tool(replay_main, {"replay", path, "--actor", "nobody", "--core", "test.counter"});
  EXPECT_EQ(tool.rc, 2);
}

}  // namespace
}  // namespace gfdit
