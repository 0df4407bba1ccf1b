// Topic remaps (node::add's fourth argument, what launch files' `remaps:` become), the
// subscription listing behind `gfdit topic list`, and add_tap beside set_tap.
#include <gtest/gtest.h>

#include <atomic>

#include "actors/runtime/node.hpp"
#include "messages/example.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace {

using namespace gfdit;
using namespace std::chrono_literals;
using gfdit::testing::collector;
using gfdit::testing::lambda_actor;

TEST(Remap, PublishAndSubscribeFollowTheRemapOnlyForThatActor) {
  auto n = node::create({.name = "remap", .bind = gfdit::testing::unique_ipc("remap")});
  ASSERT_TRUE(n);
  collector<std::string> remapped, plain;
  std::atomic<int> sent_taps{0}, set_taps{0};
  ASSERT_TRUE((*n)->add("src",
                        std::make_unique<lambda_actor>([](context&) { return result<void>{}; },
                                                       [](context& ctx) {
                                                         ctx.after(10ms, [&ctx] {
                                                           (void)ctx.publish("out", msg::ping{1, "x"});
                                                         });
                                                         return result<void>{};
                                                       }),
                        nlohmann::json::object(), {{"out", "wire"}}));
  ASSERT_TRUE((*n)->add("dst", std::make_unique<lambda_actor>([&](context& ctx) {
                          ctx.subscribe<msg::ping>(
                              "in", [&](const msg::ping&, const envelope& env) { remapped.push(env.destination); });
                          return result<void>{};
                        }),
                        nlohmann::json::object(), {{"in", "wire"}}));
  ASSERT_TRUE((*n)->add("other", std::make_unique<lambda_actor>([&](context& ctx) {
                          ctx.subscribe<msg::ping>(
                              "out", [&](const msg::ping&, const envelope& env) { plain.push(env.destination); });
                          return result<void>{};
                        })));
  (*n)->set_tap([&](const envelope_ptr&, tap_point p) {
    if (p == tap_point::sent) ++set_taps;
  });
  (*n)->add_tap([&](const envelope_ptr&, tap_point p) {
    if (p == tap_point::sent) ++sent_taps;
  });
  ASSERT_TRUE((*n)->start());
  ASSERT_TRUE(remapped.wait_for(1));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(remapped.items(), std::vector<std::string>{"wire"});
  EXPECT_EQ(plain.size(), 0u);  // the unremapped "out" never saw it
  const auto subs = (*n)->subscriptions();
  EXPECT_EQ(subs.at("wire"), std::vector<std::string>{"dst"});
  EXPECT_EQ(subs.at("out"), std::vector<std::string>{"other"});
  EXPECT_EQ(subs.count("in"), 0u);
  EXPECT_EQ(set_taps.load(), 1);  // both taps saw the one send
  EXPECT_EQ(sent_taps.load(), 1);
  (*n)->stop();
}

}  // namespace
