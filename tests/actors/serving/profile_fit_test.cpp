// gfdit profile's fit: measured stage times in, a profile out that the cost model reads back
// to the same times at every measured degree.
#include <gtest/gtest.h>

#include <cmath>

#include "actors/serving/profile_fit.hpp"

namespace gfdit {
namespace {

measured_model sample(std::vector<degree_timing> ds) {
  measured_model m;
  m.name = "toy";
  m.description = "a \"quoted\" toy\\model";
  m.width = m.height = 28;
  m.spatial_stride = 4;
  m.tokens = 49;
  m.state_bytes_per_token = 64;
  m.degrees = std::move(ds);
  return m;
}

// The profile as the scheduler will see it: written, then read back.
model_profile round_trip(const model_profile& p) {
  auto m = cost_model::from_yaml("models:\n" + profile_yaml(p));
  EXPECT_TRUE(m) << (m ? "" : m.err().what);
  const model_profile* q = m->find(p.name);
  EXPECT_NE(q, nullptr);
  return *q;
}

void expect_near_rel(double got, double want, double rel) {
  EXPECT_NEAR(got, want, std::fabs(want) * rel + 1e-9) << "got " << got << ", want " << want;
}

TEST(profile_fit, one_degree_puts_the_whole_step_in_the_part_that_splits) {
  auto p = fit_profile(sample({{1, 300, 60000, 2000, -1}}));
  ASSERT_TRUE(p) << p.err().what;
  const auto q = round_trip(*p);
  EXPECT_EQ(q.name, "toy");
  EXPECT_EQ(q.description, "a \"quoted\" toy\\model");
  EXPECT_EQ(q.max_degree, 1);
  EXPECT_EQ(q.min_side, 28);
  EXPECT_EQ(q.spatial_stride, 4);
  EXPECT_EQ(cost_model::tokens(q, 28, 28, 1), 49);
  expect_near_rel(cost_model::stage_us(q, stage::denoise, 49, 1), 60000, 1e-5);
  expect_near_rel(cost_model::stage_us(q, stage::prepare, 49, 1), 300, 1e-5);
  expect_near_rel(cost_model::stage_us(q, stage::decode, 49, 1), 2000, 1e-5);
  EXPECT_EQ(q.reshard_fixed_us, 50000);  // not measured: the stock default
}

TEST(profile_fit, three_degrees_recover_the_fixed_split_and_per_rank_parts) {
  // step(d) = 5000 + 80000/d + 3000*(d-1)
  auto step = [](double d) { return 5000 + 80000 / d + 3000 * (d - 1); };
  auto p =
      fit_profile(sample({{1, 300, step(1), 2000, -1}, {2, 310, step(2), 2100, 900}, {4, 320, step(4), 2300, 1500}}));
  ASSERT_TRUE(p) << p.err().what;
  const auto q = round_trip(*p);
  EXPECT_EQ(q.max_degree, 4);
  expect_near_rel(q.step.a_us, 5000, 1e-4);
  expect_near_rel(q.step.bp_us * 49, 80000, 1e-4);
  expect_near_rel(q.comm_alpha_us, 3000, 1e-4);
  for (int d : {1, 2, 4}) expect_near_rel(cost_model::stage_us(q, stage::denoise, 49, d), step(d), 1e-4);
  // The largest move measured, at this size, is the fixed cost.
  expect_near_rel(cost_model::reshard_us(q, 49), 1500, 1e-3);
}

TEST(profile_fit, two_degrees_fit_exactly_without_a_communication_term) {
  auto p = fit_profile(sample({{1, 300, 50000, 2000, -1}, {2, 300, 30000, 2000, 800}}));
  ASSERT_TRUE(p) << p.err().what;
  expect_near_rel(p->step.a_us, 10000, 1e-9);
  expect_near_rel(p->step.bp_us * 49, 40000, 1e-9);
  EXPECT_EQ(p->comm_alpha_us, 0);
}

TEST(profile_fit, no_coefficient_comes_out_negative) {
  // Faster than linear (a cache effect): the fixed part would be negative; it is dropped.
  auto p = fit_profile(sample({{1, 300, 100000, 2000, -1}, {2, 300, 40000, 2000, 800}, {4, 300, 15000, 2000, 900}}));
  ASSERT_TRUE(p) << p.err().what;
  EXPECT_GE(p->step.a_us, 0);
  EXPECT_GE(p->step.bp_us, 0);
  EXPECT_GE(p->comm_alpha_us, 0);
  EXPECT_GT(p->step.bp_us, 0);
}

TEST(profile_fit, nothing_measured_is_an_error) {
  auto p = fit_profile(sample({}));
  ASSERT_FALSE(p);
  EXPECT_NE(p.err().what.find("no degree was measured"), std::string::npos) << p.err().what;
}

}  // namespace
}  // namespace gfdit
