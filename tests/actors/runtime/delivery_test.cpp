// Delivery in one process: directed, pub/sub, requests and their timeouts, errors for unknown
// destinations, and order per sender -> receiver pair.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "actors/runtime/node.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit {
namespace {

using testing::collector;
using testing::lambda_actor;
using namespace std::chrono_literals;

std::unique_ptr<node> make_node(const std::string& name) {
  auto n = node::create({.name = name, .bind = testing::unique_ipc(name)});
  EXPECT_TRUE(n);
  return std::move(*n);
}

TEST(delivery, directed_and_topic_messages_reach_their_handlers_with_stamps) {
  auto n = make_node("d1");
  collector<envelope> direct, topic_a, topic_b;
  ASSERT_TRUE(n->add("a", std::make_unique<lambda_actor>([&](context& ctx) {
                       ctx.on<msg::ping>([&](const msg::ping&, const envelope& e) { direct.push(e); });
                       ctx.subscribe<msg::pong>("news", [&](const msg::pong&, const envelope& e) { topic_a.push(e); });
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->add("b", std::make_unique<lambda_actor>(
                              [&](context& ctx) {
                                ctx.subscribe<msg::pong>("news",
                                                         [&](const msg::pong&, const envelope& e) { topic_b.push(e); });
                                return result<void>{};
                              },
                              [&](context& ctx) {
                                EXPECT_TRUE(ctx.send("a", msg::ping{1, "x"}));
                                EXPECT_TRUE(ctx.publish("news", msg::pong{2, "y"}));
                                return result<void>{};
                              })));
  ASSERT_TRUE(n->start());
  ASSERT_TRUE(direct.wait_for(1));
  ASSERT_TRUE(topic_a.wait_for(1));
  ASSERT_TRUE(topic_b.wait_for(1));
  const auto d = direct.items()[0];
  EXPECT_EQ(d.sender, "b");
  EXPECT_EQ(d.destination, "a");
  EXPECT_EQ(d.kind, route::direct);
  EXPECT_EQ(d.seq, 1u);
  EXPECT_GT(d.time.wall_ns, 0);
  const auto t = topic_a.items()[0];
  EXPECT_EQ(t.destination, "news");
  EXPECT_EQ(t.seq, 2u);
  EXPECT_GT(t.time.logical, d.time.logical);
}

TEST(delivery, sending_to_an_unknown_actor_is_an_error_not_a_silent_drop) {
  auto n = make_node("d2");
  collector<std::string> errors;
  ASSERT_TRUE(n->add("a", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                       auto r = ctx.send("nobody", msg::ping{});
                       errors.push(r ? "" : r.err().what);
                       ctx.request<msg::pong>("nobody", msg::ping{}, 1s,
                                              [&](result<msg::pong> p) { errors.push(p ? "" : p.err().what); });
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->start());
  ASSERT_TRUE(errors.wait_for(2));
  for (const auto& e : errors.items()) EXPECT_NE(e.find("no actor named 'nobody'"), std::string::npos) << e;
}

TEST(delivery, a_request_gets_its_reply_or_a_timeout_error) {
  auto n = make_node("d3");
  collector<std::string> outcomes;
  ASSERT_TRUE(n->add("server", std::make_unique<lambda_actor>([](context& ctx) {
                       ctx.on_request<msg::ping, msg::pong>(
                           [](const msg::ping& p, const envelope&) -> result<msg::pong> {
                             if (p.data == "refuse") return make_error(errc::invalid_argument, "refused by policy");
                             return msg::pong{p.count * 2, p.data};
                           });
                       // heartbeat has no handler here: a request for it is never answered.
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->add("client", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                       ctx.request<msg::pong>("server", msg::ping{21, "ok"}, 5s, [&](result<msg::pong> r) {
                         outcomes.push(r ? "reply " + std::to_string(r->count) : r.err().what);
                       });
                       ctx.request<msg::pong>("server", msg::ping{1, "refuse"}, 5s,
                                              [&](result<msg::pong> r) { outcomes.push(r ? "reply" : r.err().what); });
                       ctx.request<msg::pong>("server", msg::heartbeat{"x", 1}, 200ms, [&](result<msg::pong> r) {
                         outcomes.push(r ? "reply" : std::string(to_string(r.err().code)));
                       });
                       return result<void>{};
                     })));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(n->start());
  ASSERT_TRUE(outcomes.wait_for(3));
  const auto o = outcomes.items();
  EXPECT_EQ(o[0], "reply 42");
  EXPECT_NE(o[1].find("refused by policy"), std::string::npos) << o[1];
  EXPECT_EQ(o[2], "timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
}

TEST(delivery, order_is_kept_per_pair_over_100000_messages) {
  auto n = make_node("d4");
  constexpr std::uint64_t count = 100000;
  std::atomic<std::uint64_t> next{1}, out_of_order{0};
  collector<int> done;
  ASSERT_TRUE(n->add("sink", std::make_unique<lambda_actor>([&](context& ctx) {
                       ctx.on<msg::ping>([&](const msg::ping& p, const envelope&) {
                         if (p.count != next) ++out_of_order;
                         next = p.count + 1;
                         if (p.count == count) done.push(1);
                       });
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->add("source", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                       for (std::uint64_t i = 1; i <= count; ++i) (void)ctx.send("sink", msg::ping{i, ""});
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->start());
  ASSERT_TRUE(done.wait_for(1, 60s));
  EXPECT_EQ(out_of_order.load(), 0u);
  EXPECT_EQ(next.load(), count + 1);
}

TEST(delivery, the_tap_sees_every_envelope_sent_and_delivered) {
  auto n = make_node("d5");
  std::atomic<int> sent{0}, delivered{0}, routed{0};
  n->set_tap([&](const envelope_ptr& e, tap_point p) {
    if (!e->is<msg::ping>()) return;
    ++(p == tap_point::sent ? sent : p == tap_point::delivered ? delivered : routed);
  });
  collector<int> got;
  ASSERT_TRUE(n->add("a", std::make_unique<lambda_actor>([&](context& ctx) {
                       ctx.subscribe<msg::ping>("t", [&](const msg::ping&, const envelope&) { got.push(1); });
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->add("b", std::make_unique<lambda_actor>(
                              [&](context& ctx) {
                                ctx.subscribe<msg::ping>("t", [&](const msg::ping&, const envelope&) { got.push(2); });
                                return result<void>{};
                              },
                              [](context& ctx) {
                                for (int i = 0; i < 10; ++i) (void)ctx.publish("t", msg::ping{});
                                return result<void>{};
                              })));
  ASSERT_TRUE(n->start());
  ASSERT_TRUE(got.wait_for(20));
  EXPECT_EQ(sent.load(), 10);
  EXPECT_EQ(delivered.load(), 20);
  EXPECT_EQ(routed.load(), 10);
}

TEST(delivery, timers_fire_periodically_and_once_and_can_be_cancelled) {
  auto n = make_node("d6");
  collector<std::string> ticks;
  ASSERT_TRUE(n->add("a", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                       auto id = std::make_shared<timer_id>(0);
                       auto count = std::make_shared<int>(0);
                       *id = ctx.every(5ms, [&, id, count] {
                         ticks.push("every");
                         if (++*count == 3) ctx.cancel(*id);
                       });
                       ctx.after(1ms, [&] { ticks.push("after"); });
                       auto never = ctx.after(50ms, [&] { ticks.push("never"); });
                       ctx.cancel(never);
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->start());
  ASSERT_TRUE(ticks.wait_for(4));
  std::this_thread::sleep_for(100ms);
  auto t = ticks.items();
  EXPECT_EQ(std::count(t.begin(), t.end(), "every"), 3);
  EXPECT_EQ(std::count(t.begin(), t.end(), "after"), 1);
  EXPECT_EQ(std::count(t.begin(), t.end(), "never"), 0);
}

}  // namespace
}  // namespace gfdit

namespace gfdit {
namespace {

// context::waker: other threads wake the actor; each call runs the callback once, on the
// actor's thread (never two at a time), and a waker that outlives its node does nothing.
TEST(delivery, a_waker_runs_its_callback_on_the_actor_thread_once_per_call) {
  auto n = make_node("d7");
  std::function<void()> wake;
  std::atomic<int> inside{0}, overlaps{0};
  collector<std::thread::id> runs;
  std::promise<void> activated;
  ASSERT_TRUE(n->add("a", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                       wake = ctx.waker([&] {
                         if (inside.fetch_add(1) != 0) ++overlaps;
                         runs.push(std::this_thread::get_id());
                         inside.fetch_sub(1);
                       });
                       activated.set_value();
                       return result<void>{};
                     })));
  ASSERT_TRUE(n->start());
  activated.get_future().wait();
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int i = 0; i < 250; ++i) wake();
    });
  std::set<std::thread::id> caller_ids;
  for (auto& t : callers) caller_ids.insert(t.get_id());
  for (auto& t : callers) t.join();
  ASSERT_TRUE(runs.wait_for(1000));
  std::this_thread::sleep_for(50ms);
  const auto r = runs.items();
  EXPECT_EQ(r.size(), 1000u);
  EXPECT_EQ(overlaps.load(), 0);
  for (auto id : r) ASSERT_EQ(caller_ids.count(id), 0u) << "ran on a calling thread";
  n->stop();
  n.reset();
  wake();  // the actor is gone: nothing happens, nothing crashes
  EXPECT_EQ(runs.items().size(), 1000u);
}

TEST(delivery, a_peer_endpoint_that_cannot_be_connected_fails_start_with_its_name) {
  auto n = node::create({.name = "d7",
                         .bind = testing::unique_ipc("d7"),
                         .peers = {{"ghost", "bogus://nowhere"}},
                         .peer_timeout = std::chrono::milliseconds(300)});
  ASSERT_TRUE(n);
  ASSERT_TRUE((*n)->add("a", std::make_unique<testing::lambda_actor>(nullptr)));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = (*n)->start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::timeout);
  EXPECT_NE(r.err().what.find("'ghost'"), std::string::npos) << r.err().what;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // The bus did not spin re-greeting a peer it can never reach: one failure, not thousands.
  EXPECT_EQ((*n)->transport_stats().failed, 1u);
}

}  // namespace
}  // namespace gfdit
