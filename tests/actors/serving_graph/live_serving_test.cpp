// The serving graph live: admission, scheduler and membership in one process, four sim workers
// in four more, and a load client here, all over real ZeroMQ sockets. A 200-request trace is
// served with no request lost, also when a worker process is killed midway.
#include <gtest/gtest.h>

#include "actors/client/load_client.hpp"
#include "actors/runtime/node.hpp"
#include "messages/membership.hpp"
#include "tests/actors/runtime/test_support.hpp"
#include "tests/actors/serving_graph/live_graph.hpp"

namespace gfdit {
namespace {

using testing::live_graph;
using namespace std::chrono_literals;

constexpr double speedup = 200;  // model microseconds per wall microsecond
constexpr int workers = 4;

sim::run_metrics serve(live_graph& g, std::function<void(int)> at_second = {},
                       testing::collector<std::int32_t>* downs = nullptr) {
  auto n = node::create({.name = "client", .peers = {{"control", g.control_ep}}, .peer_timeout = 20s});
  EXPECT_TRUE(n);
  if (downs) {
    EXPECT_TRUE((*n)->add("observer", std::make_unique<testing::lambda_actor>([downs](context& ctx) {
                            ctx.subscribe<msg::worker_down>(
                                "membership",
                                [downs](const msg::worker_down& d, const envelope&) { downs->push(d.worker); });
                            return result<void>{};
                          })));
  }
  testing::collector<sim::run_metrics> result;
  load_client_options opt;
  opt.workload = GFDIT_SOURCE_DIR "/launch/workloads/live-demo.yaml";
  opt.gpus = workers;
  opt.speedup = speedup;
  opt.max_wall_s = 120;
  EXPECT_TRUE(
      (*n)->add("client", std::make_unique<load_client>(opt, [&](const sim::run_metrics& m) { result.push(m); })));
  auto r = (*n)->start();
  EXPECT_TRUE(r) << (r ? "" : r.err().what);
  for (int s = 1; !result.wait_for(1, 1s); ++s)
    if (at_second) at_second(s);
  return result.items()[0];
}

TEST(live_serving, a_200_request_trace_is_served_with_no_request_lost) {
  live_graph g("edf-best-fit", workers, speedup);
  const auto m = serve(g);
  EXPECT_EQ(m.arrived, 200);
  EXPECT_EQ(m.unfinished, 0);
  EXPECT_EQ(m.failed, 0);
  EXPECT_EQ(m.done + m.rejected + m.cancelled + m.failed, 200);
  EXPECT_GT(m.done, 150);
  EXPECT_GT(m.throughput_rps, 0);
  // What the scheduler alone knows reaches the client: busy GPU time through the requests'
  // accounts, groups through membership's views.
  EXPECT_GT(m.gpu_busy_fraction, 0.05);
  EXPECT_LE(m.gpu_busy_fraction, 1.0);
  EXPECT_GT(m.groups_formed, 0);
  EXPECT_EQ(m.worker_deaths, 0);
  std::printf("%s", sim::format_table({m}).c_str());
}

TEST(live_serving, killing_a_worker_process_midway_loses_no_request) {
  live_graph g("edf-best-fit", workers, speedup);
  bool killed = false;
  testing::collector<std::int32_t> downs;
  const auto m = serve(
      g,
      [&](int second) {
        if (second == 1 && !killed) {
          g.worker_procs[3]->signal(SIGKILL);
          killed = true;
        }
      },
      &downs);
  ASSERT_TRUE(killed);
  // Membership noticed the silence, and the scheduler worked on without the dead worker.
  // (A loaded CI machine may also delay another worker's heartbeat past the timeout; that
  // worker comes back with its next beat, so only worker 3 must be among the deaths.)
  const auto d = downs.items();
  EXPECT_NE(std::find(d.begin(), d.end(), 3), d.end());
  EXPECT_EQ(m.arrived, 200);
  EXPECT_EQ(m.unfinished, 0);
  EXPECT_EQ(m.done + m.rejected + m.cancelled + m.failed, 200);
  EXPECT_EQ(m.failed, 0);
  EXPECT_GE(m.worker_deaths, 1);
  std::printf("%s", sim::format_table({m}).c_str());
}

}  // namespace
}  // namespace gfdit
