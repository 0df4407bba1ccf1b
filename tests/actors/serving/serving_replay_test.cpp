// Issue 5's acceptance: a live sim-backend serving run of 500 requests (the stock launch graph,
// `gfdit launch`, one process per worker, real sockets) recorded by the control process's
// recorder; the scheduler re-driven from the bag gives "identical (N messages)", a changed
// policy diverges at its first different decision, and the timeline draws every worker's tasks.
// Issue 24: admission and membership, re-driven from the same bag, replay identically too.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "actors/recorder/replay.hpp"
#include "actors/serving/serving_replay.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"
#include "tests/launch/launch_test_support.hpp"

namespace gfdit {
namespace {

using namespace std::chrono_literals;

// At speedup 400 the 500 requests take about 6 s of wall time.
constexpr int requests = 500;

struct recorded_run {
  testing::temp_dir dir;
  std::string bag = dir.path() + "/run.bag";
  int status = -1;
  std::string output;
  recorded_run() {
    std::tie(status, output) = testing::run({GFDIT_EXE, "launch", GFDIT_SOURCE_DIR "/launch/graphs/serving.yaml",
                                             "requests:=" + std::to_string(requests), "speedup:=400", "bag:=" + bag},
                                            dir.path() + "/launch.log", 90s);
  }
};

std::pair<int, std::string> gfdit(const recorded_run& run, std::vector<std::string> args) {
  args.insert(args.begin(), GFDIT_EXE);
  return testing::run(std::move(args), run.dir.path() + "/tool.log", 60s);
}

void replays_identically(const recorded_run& run) {
  auto o = replay(run.bag, "scheduler", "scheduler");
  ASSERT_TRUE(o) << o.err().what;
  EXPECT_FALSE(o->first) << o->first->to_json().dump(2);
  EXPECT_GT(o->inputs, static_cast<std::uint64_t>(requests));   // admitted, task reports, ticks, hellos
  EXPECT_GT(o->outputs, static_cast<std::uint64_t>(requests));  // at least a task and a done each

  // The inputs came in the order the scheduler handled them (its dispatch markers), and its
  // parameters (chunk_steps 5, speedup 400) from the bag.
  auto r = bag::reader::open(run.bag);
  ASSERT_TRUE(r);
  auto params = recorded_parameters(**r, "scheduler");
  ASSERT_TRUE(params);
  EXPECT_EQ(params->value("chunk_steps", 0), 5);
  EXPECT_EQ(params->value("speedup", 0.0), 400.0);
  auto core = replayable_core_registry::global().make("scheduler", {"scheduler", &(*r)->head(), {}, *params});
  ASSERT_TRUE(core) << core.err().what;
  auto script = load_script(**r, "scheduler", **core);
  ASSERT_TRUE(script);
  EXPECT_TRUE(script->dispatch_order);
  EXPECT_EQ(script->inputs.size(), o->inputs);

  // The command, without --core: it finds the scheduler's core by the actor's name.
  auto [rc, out] = gfdit(run, {"replay", run.bag, "--actor", "scheduler"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("identical (" + std::to_string(o->outputs) + " messages)"), std::string::npos) << out;
}

// Admission answers every request and membership publishes the groups the scheduler formed:
// both re-driven from the bag, in the order they handled their inputs, with their recorded
// parameters, emit exactly what they emitted live.
void the_other_control_plane_actors_replay_identically(const recorded_run& run) {
  for (const std::string actor : {"admission", "membership"}) {
    SCOPED_TRACE(actor);
    auto o = replay(run.bag, actor, actor);
    ASSERT_TRUE(o) << o.err().what;
    EXPECT_FALSE(o->first) << o->first->to_json().dump(2);
    auto r = bag::reader::open(run.bag);
    ASSERT_TRUE(r);
    auto params = recorded_parameters(**r, actor);
    ASSERT_TRUE(params);
    EXPECT_EQ(params->value("speedup", 0.0), 400.0);
    auto core = replayable_core_registry::global().make(actor, {actor, &(*r)->head(), {}, *params});
    ASSERT_TRUE(core) << core.err().what;
    auto script = load_script(**r, actor, **core);
    ASSERT_TRUE(script);
    EXPECT_TRUE(script->dispatch_order);
    auto [rc, out] = gfdit(run, {"replay", run.bag, "--actor", actor});
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("identical (" + std::to_string(o->outputs) + " messages)"), std::string::npos) << out;
  }
  // Admission: a request in, an answer to the client (and an Admitted to the scheduler) out.
  auto a = replay(run.bag, "admission", "admission");
  ASSERT_TRUE(a);
  EXPECT_GT(a->outputs, static_cast<std::uint64_t>(requests));
  EXPECT_LE(a->outputs, 2u * requests);
  EXPECT_GT(a->inputs, static_cast<std::uint64_t>(requests));  // requests and their RequestDones
  // Membership: hellos, heartbeats, ticks and group changes in; group views out.
  auto m = replay(run.bag, "membership", "membership");
  ASSERT_TRUE(m);
  EXPECT_GT(m->outputs, 0u);
  // A queue of one rejects requests the run admitted: the replay diverges.
  auto skewed = replay(run.bag, "admission", "admission", {{"max_outstanding", "1"}});
  ASSERT_TRUE(skewed) << skewed.err().what;
  EXPECT_TRUE(skewed->first);
}

void a_changed_policy_diverges(const recorded_run& run) {
  auto same = replay(run.bag, "scheduler", "scheduler");
  auto o = replay(run.bag, "scheduler", "scheduler", {{"policy", "static"}});
  ASSERT_TRUE(same && o) << (o ? "" : o.err().what);
  ASSERT_TRUE(o->first);
  const auto& d = *o->first;
  // Every output before it matched the recording; this one is the first that does not.
  EXPECT_EQ(d.index, o->outputs);
  EXPECT_LT(d.index, same->outputs);
  ASSERT_TRUE(d.expected.has_value() || d.actual.has_value());
  if (d.expected && d.actual) {
    EXPECT_FALSE(same_output(*d.expected, *d.actual));
  }

  auto [rc, out] = gfdit(run, {"replay", run.bag, "--actor", "scheduler", "--policy", "static"});
  EXPECT_EQ(rc, 1) << out;
  const auto open = out.find('{'), close = out.rfind('}');
  ASSERT_TRUE(open != std::string::npos && close != std::string::npos) << out;
  const auto json = nlohmann::json::parse(out.substr(open, close - open + 1), nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << out;
  EXPECT_EQ(json["index"], d.index);
  EXPECT_TRUE(json.contains("expected") && json.contains("actual"));
}

void the_timeline_draws_every_workers_tasks(const recorded_run& run) {
  const auto json_path = run.dir.path() + "/run.json", svg_path = run.dir.path() + "/run.svg";
  auto [rc, out] = gfdit(run, {"bag", "timeline", run.bag, "--out", json_path, "--out", svg_path});
  ASSERT_EQ(rc, 0) << out;
  const auto trace = nlohmann::json::parse(testing::read_file(json_path), nullptr, false);
  ASSERT_FALSE(trace.is_discarded());
  const auto& events = trace.is_array() ? trace : trace["traceEvents"];
  std::map<int, std::string> lanes;
  std::map<std::string, int> spans;
  for (const auto& e : events)
    if (e["ph"] == "M" && e["name"] == "thread_name") lanes[e["tid"].get<int>()] = e["args"]["name"];
  for (const auto& e : events)
    if (e["ph"] == "X") {
      ++spans[lanes[e["tid"].get<int>()]];
      EXPECT_GE(e["dur"].get<double>(), 0.0);
    }
  // Every worker the scheduler heard from ran tasks, and only those. (On a loaded machine a
  // worker's one hello is at times lost in the graph itself, before the scheduler; then it
  // never gets work, and the bag, which records what the control process saw, shows it.)
  auto r = bag::reader::open(run.bag);
  ASSERT_TRUE(r);
  bag::filter hellos;
  hellos.types = {"membership.worker_hello"};
  (*r)->set_filter(hellos);
  std::set<std::string> known;
  while (true) {
    auto n = (*r)->next();
    ASSERT_TRUE(n);
    if (!*n) break;
    auto h = open<msg::worker_hello>((*n)->env);
    ASSERT_TRUE(h);
    known.insert("worker " + std::to_string(h->worker));
  }
  EXPECT_GE(known.size(), 2u);
  std::set<std::string> drawn;
  for (const auto& [lane, count] : spans)
    if (count > 0) drawn.insert(lane);
  EXPECT_EQ(drawn, known);
  const auto svg = testing::read_file(svg_path);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 200);
  for (const auto& lane : known) EXPECT_NE(svg.find(">" + lane + "<"), std::string::npos) << lane;
}

// Options are the scheduler's four, numbers whole: anything else is an error naming it.
void bad_options_are_errors(const recorded_run& run) {
  auto refused = [&](nlohmann::json options, const std::string& says) {
    auto o = replay(run.bag, "scheduler", "scheduler", options);
    ASSERT_FALSE(o) << options.dump();
    EXPECT_NE(o.err().what.find(says), std::string::npos) << o.err().what;
  };
  refused({{"chunk_steps", "abc"}}, "'chunk_steps' = \"abc\": not an integer");
  refused({{"chunk_steps", "5x"}}, "not an integer");
  refused({{"speedup", "fast"}}, "not a number");
  refused({{"chunk_step", "5"}}, "no option 'chunk_step'");
  // A whole number in a string is taken: chunk_steps 5 is what the run recorded.
  auto same = replay(run.bag, "scheduler", "scheduler", {{"chunk_steps", "5"}, {"speedup", "400"}});
  ASSERT_TRUE(same) << same.err().what;
  EXPECT_FALSE(same->first);
  auto [rc, out] = gfdit(run, {"replay", run.bag, "--actor", "scheduler", "--option", "chunk_step=5"});
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("no option 'chunk_step'"), std::string::npos) << out;
}

// One recording serves all the checks.
TEST(serving_replay, a_recorded_live_run_replays_identically_diverges_under_another_policy_and_draws_its_timeline) {
  (void)serving_replay_cores();
  recorded_run run;
  ASSERT_EQ(run.status, 0) << run.output;
  {
    SCOPED_TRACE("identical");
    replays_identically(run);
  }
  {
    SCOPED_TRACE("admission and membership");
    the_other_control_plane_actors_replay_identically(run);
  }
  {
    SCOPED_TRACE("--policy static");
    a_changed_policy_diverges(run);
  }
  {
    SCOPED_TRACE("timeline");
    the_timeline_draws_every_workers_tasks(run);
  }
  {
    SCOPED_TRACE("bad options");
    bad_options_are_errors(run);
  }
}

}  // namespace
}  // namespace gfdit
