#include <gtest/gtest.h>

#include "actors/runtime/lifecycle.hpp"
#include "actors/runtime/node.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit {
namespace {

using testing::collector;
using testing::lambda_actor;

TEST(lifecycle, transitions_follow_the_managed_node_state_machine) {
  using s = lifecycle_state;
  using t = transition;
  EXPECT_EQ(next_state(s::unconfigured, t::configure), s::inactive);
  EXPECT_EQ(next_state(s::inactive, t::activate), s::active);
  EXPECT_EQ(next_state(s::active, t::deactivate), s::inactive);
  EXPECT_EQ(next_state(s::active, t::shutdown), s::finalized);
  EXPECT_FALSE(next_state(s::unconfigured, t::activate));
  EXPECT_FALSE(next_state(s::active, t::configure));
  EXPECT_FALSE(next_state(s::finalized, t::shutdown));
  EXPECT_EQ(parse_transition("activate"), t::activate);
  EXPECT_FALSE(parse_transition("explode"));
}

TEST(lifecycle, messages_held_while_inactive_are_delivered_on_activation) {
  auto n = node::create({.name = "lc"});
  ASSERT_TRUE(n);
  collector<std::uint64_t> got;
  ASSERT_TRUE((*n)->add("sink", std::make_unique<lambda_actor>([&](context& ctx) {
                          ctx.on<msg::ping>([&](const msg::ping& p, const envelope&) { got.push(p.count); });
                          return result<void>{};
                        })));
  ASSERT_TRUE((*n)->start());
  ASSERT_TRUE((*n)->transition_actor("sink", transition::deactivate));
  auto illegal = (*n)->transition_actor("sink", transition::deactivate);
  ASSERT_FALSE(illegal);
  EXPECT_NE(illegal.err().what.find("cannot deactivate from state inactive"), std::string::npos);

  for (std::uint64_t i = 1; i <= 3; ++i) {
    envelope env;
    env.type_id = type_id_of<msg::ping>;
    env.sender = "test";
    env.destination = "sink";
    env.payload = encode(msg::ping{i, ""});
    ASSERT_TRUE((*n)->inject(env));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(got.size(), 0u);  // held, not dropped
  ASSERT_TRUE((*n)->transition_actor("sink", transition::activate));
  ASSERT_TRUE(got.wait_for(3));
  EXPECT_EQ(got.items(), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ((*n)->actors()[0].state, lifecycle_state::active);
  (*n)->stop();
  EXPECT_EQ((*n)->actors()[0].state, lifecycle_state::finalized);
}

TEST(lifecycle, a_failing_configure_stops_start_with_the_actor_named) {
  auto n = node::create({.name = "lc2"});
  ASSERT_TRUE(n);
  ASSERT_TRUE((*n)->add("broken", std::make_unique<lambda_actor>([](context&) -> result<void> {
                          return make_error(errc::invalid_argument, "model file missing");
                        })));
  auto r = (*n)->start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("actor 'broken': configure failed: model file missing"), std::string::npos);
}

TEST(lifecycle, parameters_are_read_and_set_through_system_messages) {
  auto n = node::create({.name = "lc3"});
  ASSERT_TRUE(n);
  collector<msg::parameter_value> answers;
  std::atomic<std::int64_t> applied{0};
  ASSERT_TRUE((*n)->add("tuned", std::make_unique<lambda_actor>([&applied](context& ctx) -> result<void> {
                          auto r = ctx.params().declare<std::int64_t>("depth", 4, "", [](const std::int64_t& v) {
                            return v >= 1 && v <= 8 ? "" : "must be in [1, 8]";
                          });
                          if (!r) return r;
                          ctx.params().watch("depth",
                                             [&applied](const nlohmann::json& v) { applied = v.get<std::int64_t>(); });
                          return ctx.params().declare<std::int64_t>("width", 2);  // read at configure only
                        })));
  ASSERT_TRUE((*n)->add(
      "client", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
        auto keep = [&](result<msg::parameter_value> v) {
          answers.push(v ? *v : msg::parameter_value{"", "", v.err().what});
        };
        ctx.request<msg::parameter_value>("tuned", msg::parameter_set{"depth", "9"}, std::chrono::seconds(5), keep);
        ctx.request<msg::parameter_value>("tuned", msg::parameter_set{"depth", "\"deep\""}, std::chrono::seconds(5),
                                          keep);
        ctx.request<msg::parameter_value>("tuned", msg::parameter_set{"depth", "6"}, std::chrono::seconds(5), keep);
        ctx.request<msg::parameter_value>("tuned", msg::parameter_get{"depth"}, std::chrono::seconds(5), keep);
        ctx.request<msg::parameter_value>("tuned", msg::parameter_set{"width", "3"}, std::chrono::seconds(5), keep);
        return result<void>{};
      })));
  ASSERT_TRUE((*n)->start());
  ASSERT_TRUE(answers.wait_for(5));
  auto a = answers.items();
  EXPECT_NE(a[0].error.find("must be in [1, 8]"), std::string::npos) << a[0].error;
  EXPECT_NE(a[1].error.find("expected int"), std::string::npos) << a[1].error;
  EXPECT_EQ(a[2].error, "");
  EXPECT_EQ(nlohmann::json::parse(a[3].values_json)["depth"], 6);
  EXPECT_EQ(applied.load(), 6) << "the actor saw the change";
  EXPECT_NE(a[4].error.find("'width' is read once at configure"), std::string::npos) << a[4].error;
  EXPECT_EQ(nlohmann::json::parse(a[4].values_json)["width"], 2) << "a refused change leaves the value";
}

}  // namespace
}  // namespace gfdit

namespace gfdit {
namespace {

TEST(lifecycle, parameter_values_given_to_the_node_override_defaults_and_are_checked) {
  auto declare = [](context& ctx) {
    return ctx.params().declare<std::int64_t>("depth", 4, "",
                                              [](const std::int64_t& v) { return v >= 1 ? "" : "must be >= 1"; });
  };
  std::atomic<std::int64_t> seen{0};
  {
    auto n = node::create({.name = "ov1"});
    ASSERT_TRUE(n);
    ASSERT_TRUE((*n)->add("a", std::make_unique<testing::lambda_actor>([&](context& ctx) {
                            auto r = declare(ctx);
                            seen = ctx.params().get<std::int64_t>("depth");
                            return r;
                          }),
                          {{"depth", 7}}));
    ASSERT_TRUE((*n)->start());
    EXPECT_EQ(seen.load(), 7);
  }
  for (const auto& [overrides, expect] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"depth", 0}}, "must be >= 1"},
           {{{"depth", "deep"}}, "expected int"},
           {{{"width", 3}}, "unknown parameter 'width' (declared: depth)"}}) {
    auto n = node::create({.name = "ov2"});
    ASSERT_TRUE(n);
    ASSERT_TRUE((*n)->add("a", std::make_unique<testing::lambda_actor>(declare), overrides));
    auto r = (*n)->start();
    ASSERT_FALSE(r);
    EXPECT_NE(r.err().what.find(expect), std::string::npos) << r.err().what;
  }
}

}  // namespace
}  // namespace gfdit
