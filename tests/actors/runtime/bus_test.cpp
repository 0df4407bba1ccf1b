// The bus itself, two of them in one process over real ZeroMQ sockets: senders hand frames to
// ZeroMQ on their own threads, and only what ZeroMQ refuses goes to the bus thread; order per
// sending thread and the no-silent-drop rule hold across both paths.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <zmq.h>

#include "actors/runtime/bus.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit {
namespace {

using namespace std::chrono_literals;

envelope numbered(const std::string& sender, std::uint64_t seq, std::size_t bytes = 16) {
  envelope e;
  e.type_id = 7;
  e.sender = sender;
  e.destination = "sink";
  e.seq = seq;
  e.payload.assign(bytes, 'p');
  return e;
}

struct receiver {
  std::mutex mu;
  std::map<std::string, std::vector<std::uint64_t>> seen;  // sender -> seqs, in arrival order
  std::vector<std::string> payloads;                       // in arrival order
  std::atomic<std::size_t> count{0};
  std::atomic<int> slow_first{0};  // the first this many frames each take 1 ms: the sender's queue fills

  bus::callbacks callbacks() {
    return {[this](envelope&& e, const std::string&) {
              if (slow_first.fetch_sub(1) > 0) std::this_thread::sleep_for(1ms);
              std::lock_guard lock(mu);
              seen[e.sender].push_back(e.seq);
              payloads.push_back(std::move(e.payload));
              ++count;
            },
            {},
            {}};
  }
  bool wait_for(std::size_t n, std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (count < n && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
    return count >= n;
  }
};

TEST(bus, four_threads_posting_past_the_high_water_mark_keep_each_threads_order_and_lose_nothing) {
  receiver sink;
  sink.slow_first = 200;
  auto in = bus::create({.node = "in", .bind = testing::unique_ipc("bus-in"), .receive_hwm = 50}, sink.callbacks());
  ASSERT_TRUE(in) << in.err().what;
  std::atomic<int> failures{0};
  auto out = bus::create({.node = "out", .bind = testing::unique_ipc("bus-out"), .send_hwm = 50},
                         {{}, [&](send_failure&&) { ++failures; }, {}});
  ASSERT_TRUE(out) << out.err().what;
  (*out)->add_peer("in", (*in)->endpoint());
  std::this_thread::sleep_for(200ms);  // the DEALER connects (ZMQ_IMMEDIATE refuses until then)
  constexpr int threads = 4, per_thread = 20000;
  std::vector<std::thread> posters;
  for (int t = 0; t < threads; ++t)
    posters.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) (*out)->post("in", numbered("t" + std::to_string(t), i));
    });
  for (auto& p : posters) p.join();
  ASSERT_TRUE((*out)->flush(30s));
  ASSERT_TRUE(sink.wait_for(threads * per_thread, 30s)) << sink.count << " arrived";
  EXPECT_EQ(failures, 0);
  for (int t = 0; t < threads; ++t) {
    const auto& seqs = sink.seen["t" + std::to_string(t)];
    ASSERT_EQ(seqs.size(), static_cast<std::size_t>(per_thread));
    for (int i = 0; i < per_thread; ++i) ASSERT_EQ(seqs[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(i));
  }
  const auto s = (*out)->stats();
  EXPECT_EQ(s.sent, static_cast<std::uint64_t>(threads * per_thread));
  EXPECT_EQ(s.failed, 0u);
}

// A payload of 16 KiB or more, posted shared, leaves as a frame of its own (no copy): the
// receiver gets the same bytes as from one frame, in order with the small ones.
TEST(bus, one_post_to_several_peers_reaches_each_and_large_payloads_arrive_whole) {
  receiver a, b;
  auto in_a = bus::create({.node = "a", .bind = testing::unique_ipc("bus-a")}, a.callbacks());
  auto in_b = bus::create({.node = "b", .bind = "tcp://127.0.0.1:*"}, b.callbacks());
  auto out = bus::create({.node = "out", .bind = testing::unique_ipc("bus-o")}, {});
  ASSERT_TRUE(in_a && in_b && out);
  (*out)->add_peer("a", (*in_a)->endpoint());
  (*out)->add_peer("b", (*in_b)->endpoint());
  std::this_thread::sleep_for(200ms);
  auto make = [](std::uint64_t i) {
    const std::size_t bytes = i % 3 == 0 ? 100 : i % 3 == 1 ? (16u << 10) : (1u << 20) + i;
    auto e = numbered("o", i, bytes);
    for (std::size_t k = 0; k < bytes; k += 997) e.payload[k] = static_cast<char>('a' + (i + k) % 26);
    return e;
  };
  const std::vector<std::string> both{"a", "b"};
  for (std::uint64_t i = 0; i < 60; ++i) {
    if (i % 2)
      (*out)->post(both, make(i));
    else
      (*out)->post(both, std::make_shared<const envelope>(make(i)));
  }
  ASSERT_TRUE((*out)->flush(10s));
  ASSERT_TRUE(a.wait_for(60, 10s));
  ASSERT_TRUE(b.wait_for(60, 10s));
  for (auto* r : {&a, &b}) {
    std::vector<std::uint64_t> want(60);
    for (std::uint64_t i = 0; i < 60; ++i) want[i] = i;
    EXPECT_EQ(r->seen["o"], want);
    for (std::uint64_t i = 0; i < 60; ++i) EXPECT_TRUE(r->payloads[i] == make(i).payload) << "payload " << i;
  }
}

// A peer's frames as ZeroMQ delivers them: a payload frame after an envelope that already has
// a payload, or more than three frames, is counted and dropped; the valid split one arrives.
TEST(bus, a_payload_frame_that_does_not_fit_its_header_is_dropped_and_counted) {
  receiver sink;
  std::mutex why_mu;
  std::vector<std::string> why;
  auto cbs = sink.callbacks();
  cbs.on_undecodable = [&](const std::string& w) {
    std::lock_guard lock(why_mu);
    why.push_back(w);
  };
  auto in = bus::create({.node = "in", .bind = testing::unique_ipc("bus-h")}, cbs);
  ASSERT_TRUE(in);
  void* ctx = zmq_ctx_new();
  void* d = zmq_socket(ctx, ZMQ_DEALER);
  zmq_connect(d, (*in)->endpoint().c_str());
  auto send_parts = [&](const std::vector<std::string>& parts) {
    for (std::size_t i = 0; i < parts.size(); ++i)
      zmq_send(d, parts[i].data(), parts[i].size(), i + 1 < parts.size() ? ZMQ_SNDMORE : 0);
  };
  const auto full = numbered("o", 1, 20);
  send_parts({encode_envelope(full), "second payload"});
  send_parts({encode_envelope_header(full), "x", "y"});
  send_parts({encode_envelope_header(numbered("o", 2)), std::string(40000, 'z')});
  ASSERT_TRUE(sink.wait_for(1, 10s));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(sink.count, 1u);
  EXPECT_EQ(sink.seen["o"], std::vector<std::uint64_t>{2});
  EXPECT_EQ(sink.payloads.at(0), std::string(40000, 'z'));
  EXPECT_EQ((*in)->stats().decode_errors, 2u);
  std::lock_guard lock(why_mu);
  ASSERT_EQ(why.size(), 2u);
  EXPECT_EQ(why[0], "a payload frame after an envelope that has one");
  EXPECT_EQ(why[1], "a message of more than three frames");
  const int linger = 0;
  zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
  zmq_close(d);
  zmq_ctx_term(ctx);
}

TEST(bus, a_frame_that_cannot_leave_is_reported_on_the_bus_thread_with_why) {
  std::mutex mu;
  std::vector<std::pair<std::string, std::thread::id>> failed;
  auto out = bus::create({.node = "out", .bind = testing::unique_ipc("bus-f"), .send_timeout = 300ms},
                         {{},
                          [&](send_failure&& f) {
                            std::lock_guard lock(mu);
                            failed.push_back({f.peer + ": " + f.reason, std::this_thread::get_id()});
                          },
                          {}});
  ASSERT_TRUE(out);
  (*out)->post("nobody", numbered("o", 1));
  // A peer that is known but never comes up: the frame waits, then fails after send_timeout.
  (*out)->add_peer("late", testing::unique_ipc("bus-never"));
  (*out)->post("late", numbered("o", 2));
  ASSERT_TRUE((*out)->flush(5s));
  std::lock_guard lock(mu);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].first, "nobody: no connection to node 'nobody'");
  EXPECT_NE(failed[1].first.find("late: peer 'late' did not take the frame within 300 ms"), std::string::npos)
      << failed[1].first;
  for (const auto& [what, thread] : failed) EXPECT_NE(thread, std::this_thread::get_id()) << what;
  EXPECT_EQ((*out)->stats().failed, 2u);
}

}  // namespace
}  // namespace gfdit
