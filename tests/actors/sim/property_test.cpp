// Property: over 1,000 seeds of random small workloads, random policies and random worker
// deaths and message delays, every admitted request ends in exactly one terminal state and no
// worker is ever in two groups (the scheduler's and membership's invariants are checked after
// every event).
#include <gtest/gtest.h>

#include "actors/sim/simulator.hpp"

namespace gfdit::sim {
namespace {

workload random_workload(rng& g) {
  struct shape {
    const char* model;
    std::int32_t w, h, frames, steps;
  };
  const shape shapes[] = {{"dit-xl-2-256", 256, 256, 1, 20},
                          {"image-dit-20b-standin", 512, 512, 1, 12},
                          {"image-dit-20b-standin", 1024, 1024, 1, 12},
                          {"image-dit-20b-standin", 1536, 1536, 1, 8},
                          {"mmdit-12b-standin", 1024, 1024, 1, 10},
                          {"video-dit-5b-standin", 832, 480, 17, 6}};
  workload w;
  w.name = "random";
  w.seed = g.next();
  w.requests = 5 + static_cast<std::int64_t>(g.below(30));
  w.chunk_steps = 1 + static_cast<std::int32_t>(g.below(4));
  w.cancel_fraction = g.uniform() < 0.3 ? 0.3 : 0.0;
  w.admission_queue = g.uniform() < 0.2 ? 4 : 0;
  const auto n = 1 + g.below(3);
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto& s = shapes[g.below(std::size(shapes))];
    request_class c;
    c.name = "c";
    c.name += std::to_string(i);
    c.model = s.model;
    c.width = s.w;
    c.height = s.h;
    c.frames = s.frames;
    c.steps = s.steps;
    c.slo_multiple = g.uniform() < 0.2 ? 0.0 : 1.0 + 4.0 * g.uniform();
    c.priority = static_cast<std::int32_t>(g.below(3));
    c.weight = 0.5 + g.uniform();
    w.classes.push_back(c);
  }
  const char* procs[] = {"poisson", "bursts", "phases"};
  w.arrivals.process = procs[g.below(3)];
  w.arrivals.load = 0.2 + 1.5 * g.uniform();
  w.arrivals.burst_period_s = 20;
  w.arrivals.burst_s = 5;
  w.arrivals.phases = {{10, 0.3, 0}, {10, 1.5, 0}};
  return w;
}

TEST(property, every_request_ends_exactly_once_and_no_worker_is_in_two_groups) {
  const char* policies[] = {"static:1", "static:2", "static", "fcfs-elastic", "srtf", "edf-best-fit"};
  int with_deaths = 0, with_failures_handled = 0;
  for (std::uint64_t seed = 1; seed <= 1000; ++seed) {
    rng g(seed * 7919);
    workload w = random_workload(g);
    sim_options o;
    o.policy = policies[g.below(std::size(policies))];
    const std::int32_t unit = o.policy == "static" ? 4 : o.policy == "static:2" ? 2 : 1;
    o.gpus = unit * (1 + static_cast<std::int32_t>(g.below(8 / unit + 1)));
    o.check_invariants = true;
    o.heartbeat_us = 200'000;
    o.heartbeat_timeout_us = 600'000;
    if (g.uniform() < 0.6) {
      o.fault.random_deaths = 1 + static_cast<std::int32_t>(g.below(o.gpus));
      // Static groups wait for their dead member, so it must come back; elastic ones need not.
      o.fault.random_recover_after_s = (unit > 1 || g.uniform() < 0.5) ? 1.0 + 5.0 * g.uniform() : 0.0;
      ++with_deaths;
    }
    if (g.uniform() < 0.4) {
      o.fault.delay_prob = 0.3;
      o.fault.delay_max_ms = 200;
    }
    auto m = simulate(w, o);
    ASSERT_TRUE(m) << "seed " << seed << ": " << m.err().what;
    ASSERT_EQ(m->invariant_violation, "") << "seed " << seed << " policy " << o.policy;
    ASSERT_EQ(m->unfinished, 0) << "seed " << seed << " policy " << o.policy << " gpus " << o.gpus;
    ASSERT_EQ(m->arrived, w.requests) << "seed " << seed;
    ASSERT_EQ(m->done + m->rejected + m->cancelled + m->failed, m->arrived) << "seed " << seed;
    with_failures_handled += m->tasks_failed > 0;
  }
  // The faults really happened (the property is not vacuous).
  EXPECT_GT(with_deaths, 400);
  EXPECT_GT(with_failures_handled, 50);
}

}  // namespace
}  // namespace gfdit::sim
