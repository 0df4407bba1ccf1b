// The one rule for moving a request's state, and the wire names of layouts and stages.
#include <gtest/gtest.h>

#include <vector>

#include "actors/serving/stage.hpp"
#include "actors/serving/state_layout.hpp"

namespace gfdit {
namespace {

msg::artifact at(std::vector<std::int32_t> holders, state_layout l) {
  return msg::artifact{7, std::move(holders), std::string(to_string(l)), 4};
}

TEST(state_layout, a_task_moves_the_state_only_when_it_lives_elsewhere_or_only_in_the_checkpoint) {
  const std::vector<std::int32_t> group{2, 3};
  EXPECT_FALSE(needs_move(at({}, state_layout::none), group));  // not started: nothing to move
  EXPECT_FALSE(needs_move(at({2, 3}, state_layout::token_sharded), group));
  EXPECT_FALSE(needs_move(at({2, 3}, state_layout::replicated), group));
  EXPECT_TRUE(needs_move(at({3, 2}, state_layout::token_sharded), group));  // same workers, other order
  EXPECT_TRUE(needs_move(at({2}, state_layout::owner_only), group));
  EXPECT_TRUE(needs_move(at({2, 3}, state_layout::checkpoint), group));
  EXPECT_TRUE(needs_move(at({}, state_layout::checkpoint), group));
}

TEST(state_layout, names_are_the_wire_strings_and_read_back) {
  for (auto l : {state_layout::none, state_layout::owner_only, state_layout::replicated, state_layout::token_sharded,
                 state_layout::checkpoint})
    EXPECT_EQ(layout_from_string(to_string(l)), l);
  EXPECT_EQ(to_string(state_layout::token_sharded), "token_sharded");
  EXPECT_FALSE(layout_from_string("sharded").has_value());
  for (auto s : {stage::prepare, stage::denoise, stage::decode}) EXPECT_EQ(*stage_from_string(to_string(s)), s);
  EXPECT_FALSE(stage_from_string("train"));
}

}  // namespace
}  // namespace gfdit
