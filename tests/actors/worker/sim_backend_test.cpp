#include <gtest/gtest.h>

#include "actors/worker/sim_backend.hpp"

namespace gfdit {
namespace {

msg::task_assign task(std::vector<std::int32_t> members, msg::artifact input) {
  msg::task_assign t;
  t.task_id = 7;
  t.request_id = 3;
  t.model = "video-dit-5b-standin";
  t.tokens = 18480;
  t.stage = "denoise";
  t.step_begin = 4;
  t.step_end = 6;
  t.members = std::move(members);
  t.input = std::move(input);
  return t;
}

TEST(sim_backend, takes_the_cost_models_time_and_only_the_first_member_reports) {
  const auto& costs = cost_model::stock();
  const auto& p = *costs.find("video-dit-5b-standin");
  auto t = task({2, 5}, msg::artifact{3, {2, 5}, "token_sharded", 4});
  auto lead = sim_backend(2, costs).start(t, 1000, true);
  auto other = sim_backend(5, costs).start(t, 1000, true);
  const auto expect = std::llround(cost_model::task_us(p, stage::denoise, 18480, 2, 2));
  EXPECT_EQ(lead.compute_us, expect);
  EXPECT_EQ(lead.reshard_us, 0);
  EXPECT_EQ(lead.end_us, 1000 + expect);
  ASSERT_TRUE(lead.report);
  EXPECT_TRUE(lead.report->ok);
  EXPECT_EQ(lead.report->task_id, 7u);
  EXPECT_EQ(lead.report->compute_us, expect);
  EXPECT_FALSE(other.report);
  EXPECT_EQ(other.end_us, lead.end_us);
}

TEST(sim_backend, charges_a_reshard_when_the_state_lives_elsewhere) {
  const auto& costs = cost_model::stock();
  auto moved = task({0, 1, 2, 3}, msg::artifact{3, {0, 1}, "token_sharded", 4});
  auto r = sim_backend(0, costs).start(moved, 0, true);
  EXPECT_GT(r.reshard_us, 50'000 - 1);
  EXPECT_EQ(r.report->reshard_us, r.reshard_us);
  auto restored = task({0}, msg::artifact{3, {}, "checkpoint", 4});
  EXPECT_GT(sim_backend(0, costs).start(restored, 0, true).reshard_us, 0);
  auto fresh = task({0}, msg::artifact{3, {}, "none", 0});
  EXPECT_EQ(sim_backend(0, costs).start(fresh, 0, true).reshard_us, 0);
}

TEST(sim_backend, fails_after_the_collective_timeout_when_a_peer_is_gone_or_the_task_is_bad) {
  const auto& costs = cost_model::stock();
  auto r = sim_backend(1, costs, {250}).start(task({1, 2}, {}), 100, false);
  ASSERT_TRUE(r.report);
  EXPECT_FALSE(r.report->ok);
  EXPECT_EQ(r.end_us, 350);
  auto bad = task({1}, {});
  bad.model = "no-such-model";
  auto b = sim_backend(1, costs).start(bad, 0, true);
  ASSERT_TRUE(b.report);
  EXPECT_FALSE(b.report->ok);
  EXPECT_NE(b.report->error.find("no-such-model"), std::string::npos);
}

}  // namespace
}  // namespace gfdit
