// Delivery between two real processes over ZeroMQ (ipc and tcp): directed, pub/sub, requests,
// order over 100,000 messages, timeouts, a killed peer, and clean shutdown on SIGTERM.
#include <gtest/gtest.h>

#include "actors/runtime/node.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit {
namespace {

using testing::child_process;
using testing::collector;
using testing::lambda_actor;
using namespace std::chrono_literals;

struct probe_run {
  std::unique_ptr<node> n;
  std::unique_ptr<child_process> peer;
};

// Starts the peer process at `endpoint` and a local node "probe" hosting `probe`.
probe_run start_pair(const std::string& endpoint, std::unique_ptr<actor> probe,
                     std::chrono::milliseconds send_timeout = 5000ms) {
  probe_run run;
  run.peer = std::make_unique<child_process>(std::vector<std::string>{GFDIT_TEST_PEER, "peer", endpoint});
  auto n = node::create({.name = "probe",
                         .bind = "tcp://127.0.0.1:*",
                         .peers = {{"peer", endpoint}},
                         .send_timeout = send_timeout,
                         .peer_timeout = 20000ms});
  EXPECT_TRUE(n);
  run.n = std::move(*n);
  EXPECT_TRUE(run.n->add("probe", std::move(probe)));
  auto r = run.n->start();
  EXPECT_TRUE(r) << (r ? "" : r.err().what);
  return run;
}

class cross_process : public ::testing::TestWithParam<std::string> {
 protected:
  std::string endpoint() const {
    return GetParam() == "ipc" ? testing::unique_ipc("x")
                               : "tcp://127.0.0.1:" + std::to_string(testing::free_tcp_port());
  }
};

TEST_P(cross_process, directed_topic_and_request_messages_cross) {
  collector<std::string> seen;
  auto run = start_pair(endpoint(),
                        std::make_unique<lambda_actor>(
                            [&](context& ctx) {
                              ctx.on<msg::pong>([&](const msg::pong& p, const envelope& e) {
                                seen.push("direct " + p.data + " from " + e.sender);
                              });
                              ctx.subscribe<msg::pong>(
                                  "pong", [&](const msg::pong& p, const envelope&) { seen.push("topic " + p.data); });
                              return result<void>{};
                            },
                            [&](context& ctx) {
                              EXPECT_TRUE(ctx.send("echo", msg::ping{1, "d"}));
                              EXPECT_TRUE(ctx.publish("ping", msg::ping{2, "t"}));
                              ctx.request<msg::ping>("echo", msg::pong{41, "r"}, 5s, [&](result<msg::ping> p) {
                                seen.push(p ? "reply " + std::to_string(p->count) : p.err().what);
                              });
                              return result<void>{};
                            }));
  ASSERT_TRUE(seen.wait_for(3));
  auto s = seen.items();
  std::sort(s.begin(), s.end());
  EXPECT_EQ(s, (std::vector<std::string>{"direct d from echo", "reply 42", "topic t"}));
}

TEST_P(cross_process, order_is_kept_per_pair_over_100000_messages) {
  constexpr std::uint64_t count = 100000;
  std::atomic<std::uint64_t> next{1}, out_of_order{0};
  collector<int> done;
  auto run = start_pair(endpoint(), std::make_unique<lambda_actor>(
                                        [&](context& ctx) {
                                          ctx.on<msg::pong>([&](const msg::pong& p, const envelope&) {
                                            if (p.count != next) ++out_of_order;
                                            next = p.count + 1;
                                            if (p.count == count) done.push(1);
                                          });
                                          return result<void>{};
                                        },
                                        [&](context& ctx) {
                                          for (std::uint64_t i = 1; i <= count; ++i)
                                            (void)ctx.send("echo", msg::ping{i, ""});
                                          return result<void>{};
                                        }));
  ASSERT_TRUE(done.wait_for(1, 120s));
  EXPECT_EQ(out_of_order.load(), 0u);
  EXPECT_EQ(run.n->transport_stats().decode_errors, 0u);
}

TEST_P(cross_process, an_unanswered_request_times_out) {
  collector<std::string> outcome;
  auto run = start_pair(endpoint(), std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                          ctx.request<msg::pong>("echo", msg::heartbeat{"x", 1}, 300ms, [&](result<msg::pong> p) {
                            outcome.push(p ? "reply" : to_string(p.err().code));
                          });
                          return result<void>{};
                        }));
  ASSERT_TRUE(outcome.wait_for(1));
  EXPECT_EQ(outcome.items()[0], "timeout");
}

TEST_P(cross_process, a_killed_peer_turns_sends_into_delivery_failures) {
  collector<std::string> failures;
  context* probe_ctx = nullptr;
  collector<int> ready;
  auto run =
      start_pair(endpoint(), std::make_unique<lambda_actor>([&](context& ctx) {
                   probe_ctx = &ctx;
                   ctx.on_delivery_failure([&](const error& e, const envelope&) { failures.push("send: " + e.what); });
                   ctx.on<msg::log_line>([&](const msg::log_line&, const envelope&) {
                     (void)ctx.send("echo", msg::ping{1, "after death"});
                     ctx.request<msg::ping>("echo", msg::pong{1, ""}, 10s, [&](result<msg::ping> p) {
                       failures.push(p ? "reply" : "request: " + std::string(to_string(p.err().code)));
                     });
                   });
                   return result<void>{};
                 }),
                 300ms);
  run.peer->signal(SIGKILL);
  EXPECT_EQ(run.peer->wait(), -SIGKILL);
  std::this_thread::sleep_for(100ms);
  envelope go;
  go.type_id = type_id_of<msg::log_line>;
  go.sender = "test";
  go.destination = "probe";
  go.payload = encode(msg::log_line{});
  ASSERT_TRUE(run.n->inject(go));
  ASSERT_TRUE(failures.wait_for(2, 10s));
  auto f = failures.items();
  std::sort(f.begin(), f.end());
  EXPECT_EQ(f[0], "request: unreachable");
  EXPECT_NE(f[1].find("did not take the frame within 300 ms"), std::string::npos) << f[1];
}

TEST_P(cross_process, sigterm_stops_a_node_cleanly_with_status_zero) {
  auto run = start_pair(endpoint(), std::make_unique<lambda_actor>(nullptr));
  const auto t0 = std::chrono::steady_clock::now();
  run.peer->signal(SIGTERM);
  EXPECT_EQ(run.peer->wait(5s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

INSTANTIATE_TEST_SUITE_P(transport, cross_process, ::testing::Values("ipc", "tcp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace gfdit
