#include <gtest/gtest.h>

#include "messages/catalog.hpp"
#include "messages/codec.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace gfdit {
namespace {

TEST(serving_messages, round_trip_with_nested_artifacts) {
  msg::task_assign t;
  t.task_id = 9;
  t.request_id = 4;
  t.model = "video-dit-5b-standin";
  t.stage = "denoise";
  t.step_begin = 2;
  t.step_end = 4;
  t.members = {3, 1};
  t.group_id = group_id_of(t.members);
  t.input = msg::artifact{4, {1}, "owner_only", 2};
  auto back = decode<msg::task_assign>(encode(t));
  ASSERT_TRUE(back) << back.err().what;
  EXPECT_EQ(back->members, t.members);
  EXPECT_EQ(back->group_id, t.group_id);
  EXPECT_EQ(back->input.holders, t.input.holders);
  EXPECT_EQ(back->input.layout, "owner_only");
  msg::admitted a;
  a.request.model = "m";
  a.request.slo_multiple = 1.5;
  auto ab = decode<msg::admitted>(encode(a));
  ASSERT_TRUE(ab);
  EXPECT_EQ(ab->request.model, "m");
  EXPECT_DOUBLE_EQ(ab->request.slo_multiple, 1.5);
}

TEST(serving_messages, are_in_the_catalog_and_render_as_json) {
  auto& c = catalog::global();
  for (auto name : {"serving.generate_request", "serving.admitted", "serving.rejected", "serving.task_assign",
                    "serving.task_done", "serving.reshard", "serving.preempt", "serving.cancel", "serving.request_done",
                    "membership.worker_hello", "membership.heartbeat", "membership.form_group",
                    "membership.dissolve_group", "membership.group_view", "membership.worker_down"})
    EXPECT_NE(c.find(name), nullptr) << name;
  msg::group_view v{77, 2, {0, 1}, true, ""};
  auto j = c.find("membership.group_view")->to_json(encode(v));
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["epoch"], 2);
  // A field of the wrong type ("members" as a string) is an error, not a crash.
  EXPECT_FALSE(
      decode<msg::task_assign>(std::string("\x81\xa7members\xa3"
                                           "abc",
                                           13)));
}

}  // namespace
}  // namespace gfdit
