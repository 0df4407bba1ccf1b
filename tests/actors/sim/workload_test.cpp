#include <gtest/gtest.h>

#include <cmath>

#include "actors/sim/faults.hpp"
#include "actors/sim/workload.hpp"

namespace gfdit::sim {
namespace {

const char* kMini = R"(
name: mini
seed: 5
requests: 2000
classes:
  - {name: a, model: dit-xl-2-256, width: 256, height: 256, steps: 20, slo_multiple: 2, weight: 3}
  - {name: b, model: image-dit-20b-standin, width: 1024, height: 1024, steps: 20, slo_multiple: 2, weight: 1}
arrivals: {process: poisson, rate_per_s: 10}
)";

TEST(workload, every_shipped_workload_parses_and_names_known_models) {
  for (auto name : {"video-mix", "image-mix", "bursty-mix", "phases-mix"}) {
    auto w = load_workload(std::string(GFDIT_SOURCE_DIR) + "/launch/workloads/" + name + ".yaml");
    ASSERT_TRUE(w) << w.err().what;
    auto t = generate_arrivals(*w, cost_model::stock(), 8, w->seed);
    ASSERT_TRUE(t) << name << ": " << t.err().what;
    EXPECT_EQ(static_cast<std::int64_t>(t->size()), w->requests) << name;
  }
}

TEST(workload, poisson_arrivals_have_the_asked_rate_and_class_weights) {
  auto w = parse_workload(kMini);
  ASSERT_TRUE(w) << w.err().what;
  auto t = generate_arrivals(*w, cost_model::stock(), 1, w->seed);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 2000u);
  const double rate = (t->size() - 1) / (t->back().at_us / 1e6 - t->front().at_us / 1e6);
  EXPECT_NEAR(rate, 10.0, 1.0);
  std::size_t a = 0;
  for (std::size_t i = 0; i < t->size(); ++i) {
    a += (*t)[i].class_index == 0;
    if (i) {
      EXPECT_GE((*t)[i].at_us, (*t)[i - 1].at_us);
    }
  }
  EXPECT_NEAR(a / 2000.0, 0.75, 0.04);
  // Same seed, same trace; another seed, another.
  auto t2 = generate_arrivals(*w, cost_model::stock(), 1, w->seed);
  EXPECT_EQ((*t2)[1999].at_us, (*t)[1999].at_us);
  auto t3 = generate_arrivals(*w, cost_model::stock(), 1, w->seed + 1);
  EXPECT_NE((*t3)[1999].at_us, (*t)[1999].at_us);
}

TEST(workload, load_is_a_fraction_of_the_clusters_single_gpu_capacity) {
  auto w = parse_workload(kMini);
  ASSERT_TRUE(w);
  const double m = mean_work_s(*w, cost_model::stock());
  EXPECT_GT(m, 0);
  EXPECT_DOUBLE_EQ(rate_for_load(*w, cost_model::stock(), 64, 0.5), 0.5 * 64 / m);
}

TEST(workload, bursts_concentrate_arrivals_and_keep_the_mean) {
  auto w = parse_workload(std::string(kMini) + "");
  ASSERT_TRUE(w);
  w->arrivals.process = "bursts";
  w->arrivals.burst_period_s = 100;
  w->arrivals.burst_s = 10;
  w->arrivals.burst_factor = 5;
  w->requests = 5000;
  auto t = generate_arrivals(*w, cost_model::stock(), 1, 9);
  ASSERT_TRUE(t);
  std::size_t in_burst = 0;
  for (const auto& a : *t) in_burst += std::fmod(a.at_us / 1e6, 100.0) < 10.0;
  // 10% of the time at 5x the rate of the rest: 5/(5+9) of the arrivals.
  EXPECT_NEAR(in_burst / 5000.0, 5.0 / 14.0, 0.03);
  const double rate = t->size() / (t->back().at_us / 1e6);
  EXPECT_NEAR(rate, 10.0, 1.0);
}

TEST(workload, bad_files_are_errors_that_say_what_is_wrong) {
  EXPECT_FALSE(parse_workload("name: x\n"));  // no classes
  EXPECT_FALSE(parse_workload("classes: [{model: m, weight: 0}]\narrivals: {load: 1}"));
  EXPECT_FALSE(parse_workload("classes: [{model: m}]\narrivals: {process: wobbly, load: 1}"));
  EXPECT_FALSE(parse_workload("classes: [{model: m}]\narrivals: {process: poisson}"));
  EXPECT_FALSE(parse_workload("classes: [{model: m}]\n  - broken: [yaml"));
  auto unknown = parse_workload("classes: [{model: nope}]\narrivals: {load: 1}");
  ASSERT_TRUE(unknown);
  auto t = generate_arrivals(*unknown, cost_model::stock(), 1, 1);
  ASSERT_FALSE(t);
  EXPECT_NE(t.err().what.find("nope"), std::string::npos);
  EXPECT_FALSE(load_workload("/nonexistent.yaml"));
}

TEST(faults, parse_inline_specs_and_refuse_nonsense) {
  auto f = parse_faults("deaths=2,recover_s=30,delay_prob=0.1,delay_ms=50");
  ASSERT_TRUE(f) << f.err().what;
  EXPECT_EQ(f->random_deaths, 2);
  EXPECT_DOUBLE_EQ(f->random_recover_after_s, 30);
  EXPECT_DOUBLE_EQ(f->delay_prob, 0.1);
  EXPECT_DOUBLE_EQ(f->delay_max_ms, 50);
  EXPECT_FALSE(parse_faults("deaths"));
  EXPECT_FALSE(parse_faults("lightning=3"));
  EXPECT_FALSE(parse_faults("delay_prob=2"));
  EXPECT_FALSE(parse_faults("deaths=x"));
  EXPECT_FALSE(parse_faults("/nonexistent/faults.yaml"));
}

}  // namespace
}  // namespace gfdit::sim
