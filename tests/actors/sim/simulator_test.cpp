#include <gtest/gtest.h>

#include "actors/sim/simulator.hpp"

namespace gfdit::sim {
namespace {

workload small_video(std::int64_t requests, double load) {
  auto w = load_workload(std::string(GFDIT_SOURCE_DIR) + "/launch/workloads/video-mix.yaml");
  EXPECT_TRUE(w);
  w->requests = requests;
  w->arrivals.load = load;
  return *w;
}

TEST(simulator, same_seed_gives_identical_metrics_json_faults_included) {
  auto w = small_video(120, 0.7);
  sim_options o;
  o.gpus = 8;
  o.fault = *parse_faults("deaths=2,recover_s=200,delay_prob=0.2,delay_ms=300");
  for (auto p : {"static", "edf-best-fit", "srtf"}) {
    o.policy = p;
    auto a = simulate(w, o);
    auto b = simulate(w, o);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->to_json().dump(), b->to_json().dump()) << p;
    o.seed = 99;
    auto c = simulate(w, o);
    o.seed = 0;
    EXPECT_NE(a->to_json().dump(), c->to_json().dump()) << p;
  }
}

TEST(simulator, static_never_regroups_without_faults) {
  auto w = small_video(200, 0.6);
  sim_options o;
  o.policy = "static";
  o.check_invariants = true;
  for (std::int32_t gpus : {4, 8, 16}) {
    o.gpus = gpus;
    auto m = simulate(w, o);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->groups_formed, gpus / 4);
    EXPECT_EQ(m->regroupings, 0);
    EXPECT_EQ(m->reshard_time_s, 0.0);
    EXPECT_EQ(m->done, 200);
    EXPECT_EQ(m->invariant_violation, "");
  }
}

TEST(simulator, elastic_policies_finish_everything_and_regroup) {
  auto w = small_video(200, 0.6);
  sim_options o;
  o.gpus = 8;
  o.check_invariants = true;
  for (auto p : {"fcfs-elastic", "srtf", "edf-best-fit"}) {
    o.policy = p;
    auto m = simulate(w, o);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->done, 200) << p;
    EXPECT_GT(m->regroupings, 0) << p;
    EXPECT_GT(m->gpu_busy_fraction, 0.3) << p;
    EXPECT_LE(m->gpu_busy_fraction, 1.0) << p;
    EXPECT_EQ(m->invariant_violation, "") << p;
    // latency = queue + run + reshard, on average too
    EXPECT_NEAR(m->latency.mean_s, m->mean_queue_s + m->mean_run_s + m->mean_reshard_s, 1e-6) << p;
  }
}

TEST(simulator, edf_best_fit_beats_static_on_slo_violations_at_moderate_load) {
  auto w = small_video(300, 0.5);
  sim_options o;
  o.gpus = 8;
  o.policy = "static";
  auto s = simulate(w, o);
  o.policy = "edf-best-fit";
  auto e = simulate(w, o);
  ASSERT_TRUE(s && e);
  EXPECT_GT(s->slo_violations, 0);
  EXPECT_LE(e->slo_violations, s->slo_violations / 5);
  EXPECT_LT(e->latency.mean_s, s->latency.mean_s);
}

TEST(simulator, a_full_admission_queue_rejects_and_every_request_still_ends_once) {
  auto w = small_video(300, 3.0);  // heavy overload
  sim_options o;
  o.gpus = 4;
  o.admission_queue = 8;
  o.policy = "edf-best-fit";
  o.check_invariants = true;
  auto m = simulate(w, o);
  ASSERT_TRUE(m);
  EXPECT_GT(m->rejected, 0);
  EXPECT_EQ(m->unfinished, 0);
  EXPECT_EQ(m->done + m->rejected + m->cancelled + m->failed, 300);
  EXPECT_EQ(m->invariant_violation, "");
}

TEST(simulator, unknown_policy_or_bad_gpu_count_is_an_error) {
  auto w = small_video(10, 0.5);
  sim_options o;
  o.policy = "nope";
  EXPECT_FALSE(simulate(w, o));
  o.policy = "static";
  o.gpus = 0;
  EXPECT_FALSE(simulate(w, o));
}

}  // namespace
}  // namespace gfdit::sim
