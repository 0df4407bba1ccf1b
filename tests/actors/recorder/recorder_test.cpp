// The recorder in live nodes: every message of a real exchange recorded exactly once (in one
// process and across processes over ZeroMQ), overflow counted and never silent, and the player
// re-publishing a bag with its senders and stamps.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "actors/recorder/handled_marker.hpp"
#include "actors/recorder/recorder_actor.hpp"
#include "actors/recorder/recorder_stats.hpp"
#include "actors/recorder/recorder_tap.hpp"
#include "actors/recorder/recording_queue.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/node_extension.hpp"
#include "actors/runtime/registry.hpp"
#include "bag/bag_reader.hpp"
#include "messages/example.hpp"
#include "tests/actors/runtime/test_support.hpp"
#include "tests/bag/bag_test_support.hpp"

namespace gfdit {
namespace {

using testing::collector;
using testing::lambda_actor;
using namespace std::chrono_literals;

std::vector<envelope> read_bag(const std::string& path) {
  auto r = bag::reader::open(path);
  EXPECT_TRUE(r) << (r ? "" : r.err().what);
  std::vector<envelope> out;
  if (!r) return out;
  while (true) {
    auto n = (*r)->next();
    EXPECT_TRUE(n);
    if (!n || !*n) break;
    out.push_back((*n)->env);
  }
  return out;
}

std::unique_ptr<actor> recorder() {
  (void)recorder_actor_types();
  auto a = actor_registry::global().make("gfdit.recorder");
  EXPECT_TRUE(a);
  return a;
}

// `gfdit node` applies the registered node extensions to its node; linking the recorder is what
// puts its tap among them (the CLI never names it).
TEST(recorder, its_tap_is_a_node_extension_every_graph_process_runs) {
  const auto names = node_extension_registry::global().names();
  EXPECT_NE(std::find(names.begin(), names.end(), "gfdit.recorder_tap"), names.end());
  auto nd = node::create({.name = "ext1", .bind = testing::unique_ipc("ext1")});
  ASSERT_TRUE(nd);
  node_extension_registry::global().apply(**nd);
  EXPECT_TRUE(recorder_tap_installed());
}

TEST(recorder, records_every_message_of_a_live_exchange_once) {
  constexpr std::uint64_t n = 2000;
  const auto path = testing::temp_path("live");
  collector<std::uint64_t> done;
  collector<msg::recorder_stats> stats;
  {
    auto nd = node::create({.name = "rec1", .bind = testing::unique_ipc("rec1")});
    ASSERT_TRUE(nd);
    install_recorder_tap(**nd);
    ASSERT_TRUE((*nd)->add("recorder", recorder(), {{"path", path}, {"stats_ms", 20}, {"chunk_kb", 16}}));
    // server answers requests; two listeners on topic "t"; the client drives it all.
    ASSERT_TRUE((*nd)->add("server", std::make_unique<lambda_actor>([](context& ctx) {
                             ctx.on_request<msg::ping, msg::pong>(
                                 [](const msg::ping& p, const envelope&) -> result<msg::pong> {
                                   return msg::pong{p.count, ""};
                                 });
                             return result<void>{};
                           })));
    for (const char* name : {"listener1", "listener2"})
      ASSERT_TRUE((*nd)->add(name, std::make_unique<lambda_actor>([&](context& ctx) {
                               ctx.subscribe<msg::pong>("t", [&](const msg::pong& p, const envelope&) {
                                 if (p.count == n) done.push(p.count);
                               });
                               ctx.subscribe<msg::recorder_stats>(
                                   "recorder.stats",
                                   [&](const msg::recorder_stats& s, const envelope&) { stats.push(s); });
                               return result<void>{};
                             })));
    ASSERT_TRUE((*nd)->add("client", std::make_unique<lambda_actor>(nullptr, [&](context& ctx) {
                             for (std::uint64_t i = 1; i <= n; ++i) {
                               ctx.request<msg::pong>("server", msg::ping{i, "q"}, 10s, [&ctx](result<msg::pong> p) {
                                 if (p) (void)ctx.publish("t", msg::pong{p->count, "t"});
                               });
                             }
                             return result<void>{};
                           })));
    ASSERT_TRUE((*nd)->start());
    ASSERT_TRUE(done.wait_for(2, 30s));
    ASSERT_TRUE(stats.wait_for(4, 10s));
    (*nd)->stop();
  }
  const auto all = read_bag(path);
  std::map<std::string, std::uint64_t> by_kind;
  std::set<std::pair<std::string, std::uint64_t>> ids;
  for (const auto& e : all) {
    if (e.is<msg::recorder_stats>()) continue;
    EXPECT_TRUE(ids.insert({e.sender, e.seq}).second) << "recorded twice: " << e.sender << " " << e.seq;
    by_kind[e.sender + (e.kind == route::topic ? " topic" : e.kind == route::reply ? " reply" : " direct")]++;
  }
  EXPECT_EQ(by_kind["client direct"], n);  // requests
  EXPECT_EQ(by_kind["server reply"], n);   // replies
  EXPECT_EQ(by_kind["client topic"], n);   // published once, delivered to two listeners
  EXPECT_EQ(by_kind.size(), 3u);
  for (const auto& s : stats.items()) EXPECT_EQ(s.dropped, 0u);
}

TEST(recorder, records_both_directions_of_a_cross_process_exchange_once) {
  constexpr std::uint64_t n = 500;
  const auto path = testing::temp_path("xproc");
  const auto endpoint = testing::unique_ipc("xpeer");
  testing::child_process peer({GFDIT_TEST_PEER, "peer", endpoint});
  collector<std::uint64_t> got;
  {
    auto nd = node::create({.name = "probe",
                            .bind = testing::unique_ipc("probe"),
                            .peers = {{"peer", endpoint}},
                            .peer_timeout = 20000ms});
    ASSERT_TRUE(nd);
    install_recorder_tap(**nd);
    ASSERT_TRUE((*nd)->add("recorder", recorder(), {{"path", path}}));
    // Two local subscribers of "pong": the inbound topic message is delivered twice, recorded once.
    for (const char* name : {"probe", "probe2"})
      ASSERT_TRUE((*nd)->add(
          name, std::make_unique<lambda_actor>(
                    [&, name](context& ctx) {
                      if (std::string(name) == "probe")
                        ctx.on<msg::pong>([&](const msg::pong& p, const envelope&) { got.push(p.count); });
                      ctx.subscribe<msg::pong>("pong", [&](const msg::pong& p, const envelope&) { got.push(p.count); });
                      return result<void>{};
                    },
                    [&, name](context& ctx) {
                      if (std::string(name) != "probe") return result<void>{};
                      for (std::uint64_t i = 1; i <= n; ++i) {
                        (void)ctx.send("echo", msg::ping{i, "d"});
                        (void)ctx.publish("ping", msg::ping{i, "t"});
                      }
                      return result<void>{};
                    })));
    ASSERT_TRUE((*nd)->start());
    ASSERT_TRUE(got.wait_for(3 * n, 30s));
    (*nd)->stop();
  }
  std::map<std::string, std::uint64_t> count;
  std::set<std::tuple<std::string, std::uint64_t, route>> ids;
  for (const auto& e : read_bag(path)) {
    if (e.is<msg::recorder_stats>()) continue;
    EXPECT_TRUE(ids.insert({e.sender, e.seq, e.kind}).second) << "recorded twice: " << e.sender << " " << e.seq;
    count[e.sender + (e.kind == route::topic ? " topic " : " direct ") + (e.is<msg::ping>() ? "ping" : "pong")]++;
  }
  EXPECT_EQ(count["probe direct ping"], n);
  EXPECT_EQ(count["probe topic ping"], n);
  EXPECT_EQ(count["echo direct pong"], n);
  EXPECT_EQ(count["echo topic pong"], n);
  EXPECT_EQ(count.size(), 4u);
}

TEST(recorder, a_writer_that_cannot_keep_up_drops_only_what_it_counts) {
  const auto path = testing::temp_path("drop");
  auto w = bag::writer::create(path, bag::header::current());
  ASSERT_TRUE(w);
  bag::recording_queue q(std::move(*w),
                         {.chunk_bytes = 4096, .max_queued_bytes = 8192, .on_full = bag::overflow::drop});
  constexpr std::uint64_t n = 50000;
  for (std::uint64_t i = 0; i < n; ++i) q.push(std::make_shared<const envelope>(testing::synthetic(i)));
  ASSERT_TRUE(q.stop());
  const auto c = q.counters();
  EXPECT_EQ(c.recorded + c.dropped, n);
  EXPECT_GT(c.dropped, 0u);  // 50,000 pushes into 8 KiB outrun any disk
  const auto all = read_bag(path);
  EXPECT_EQ(all.size(), c.recorded);
  // What was kept is in order and intact.
  std::uint64_t last = 0;
  for (const auto& e : all) {
    EXPECT_TRUE(all.size() == 0 || e.time.logical > last);
    last = e.time.logical;
    EXPECT_TRUE(testing::same_envelope(e, testing::synthetic(e.time.logical - 1)));
  }
}

TEST(recorder, the_queue_copies_small_envelopes_and_keeps_large_ones_until_written) {
  const auto path = testing::temp_path("copy-or-ref");
  auto w = bag::writer::create(path, bag::header::current());
  ASSERT_TRUE(w);
  // A long flush tick: only flush() makes the writer take the records.
  bag::recording_queue q(std::move(*w), {.copy_limit = 1024, .flush_every = std::chrono::hours(1)});
  auto small = std::make_shared<const envelope>(testing::synthetic(7));
  auto large_env = testing::synthetic(8);
  large_env.payload.assign(4096, 'x');
  auto large = std::make_shared<const envelope>(std::move(large_env));
  q.push(small);
  q.push_handled(*small, "echo", 1234);
  q.push(large);
  EXPECT_EQ(small.use_count(), 1);  // copied: the envelope dies when its handling is over
  EXPECT_EQ(large.use_count(), 2);  // kept by reference until written
  q.flush();
  EXPECT_EQ(large.use_count(), 1);  // written: the queue let go of it
  ASSERT_TRUE(q.stop());
  const auto all = read_bag(path);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(testing::same_envelope(all[0], *small));
  ASSERT_TRUE(bag::is_handled_marker(all[1]));
  EXPECT_EQ(all[1].destination, "echo");
  EXPECT_EQ(all[1].time.wall_ns, 1234);
  EXPECT_EQ(bag::handled_key(*decode<msg::handled>(all[1].payload)), bag::handled_key(*small));
  EXPECT_TRUE(testing::same_envelope(all[2], *large));
}

TEST(recorder, backpressure_keeps_every_message) {
  const auto path = testing::temp_path("block");
  auto w = bag::writer::create(path, bag::header::current());
  ASSERT_TRUE(w);
  bag::recording_queue q(std::move(*w),
                         {.chunk_bytes = 4096, .max_queued_bytes = 8192, .on_full = bag::overflow::block});
  constexpr std::uint64_t n = 30000;
  std::thread a([&] {
    for (std::uint64_t i = 0; i < n; i += 2) q.push(std::make_shared<const envelope>(testing::synthetic(i)));
  });
  std::thread b([&] {
    for (std::uint64_t i = 1; i < n; i += 2) q.push(std::make_shared<const envelope>(testing::synthetic(i)));
  });
  a.join();
  b.join();
  ASSERT_TRUE(q.stop());
  EXPECT_EQ(q.counters().recorded, n);
  EXPECT_EQ(q.counters().dropped, 0u);
  EXPECT_EQ(read_bag(path).size(), n);
}

TEST(recorder, a_lane_goes_once_its_thread_exited_and_it_is_drained) {
  const auto path = testing::temp_path("lanes");
  auto w = bag::writer::create(path, bag::header::current());
  ASSERT_TRUE(w);
  bag::recording_queue q(std::move(*w), {.flush_every = std::chrono::hours(1)});
  // A long-lived sender, and 20 short-lived threads that send and exit.
  std::atomic<bool> done{false};
  std::atomic<int> started{0};
  std::thread stays([&] {
    q.push(std::make_shared<const envelope>(testing::synthetic(0)));
    started = 1;
    while (!done) std::this_thread::sleep_for(1ms);
  });
  while (started == 0) std::this_thread::sleep_for(1ms);
  for (std::uint64_t t = 0; t < 20; ++t)
    std::thread([&q, t] {
      for (std::uint64_t i = 0; i < 50; ++i)
        q.push(std::make_shared<const envelope>(testing::synthetic(1 + t * 50 + i)));
    }).join();
  EXPECT_EQ(q.counters().lanes, 21u);  // nothing written yet: every lane still holds records
  q.flush();
  EXPECT_EQ(q.counters().lanes, 1u);  // the exited threads' lanes, drained, are gone
  done = true;
  stays.join();
  ASSERT_TRUE(q.stop());
  EXPECT_EQ(q.counters().recorded, 1001u);
  EXPECT_EQ(read_bag(path).size(), 1001u);
}

// What gfdit.recorder does per envelope, without the actor around it.
class queue_sink final : public tap_sink {
 public:
  explicit queue_sink(bag::recording_queue& q) : q_(q) {}
  void on_envelope(const envelope_ptr& env, std::uint64_t stamp) override { q_.push(env, stamp); }

 private:
  bag::recording_queue& q_;
};

TEST(recorder, the_bag_keeps_every_cause_before_its_effect) {
  // The sinks get a routed envelope only after its delivery, so the receiver may record its
  // answer first; the writer must still put each message of a chain after the one that caused
  // it. Four chains, each message sent by the handler of the one before (count + 1), 2 KiB
  // lanes so the writer drains (and senders wait for room) while they run.
  const auto path = testing::temp_path("causal");
  auto w = bag::writer::create(path, bag::header::current());
  ASSERT_TRUE(w);
  bag::recording_queue q(std::move(*w), {.chunk_bytes = 4096, .max_queued_bytes = 2048, .flush_every = 5ms});
  queue_sink sink(q);
  constexpr std::uint64_t hops = 3000;
  collector<std::string> done;
  {
    auto nd = node::create({.name = "causal", .bind = testing::unique_ipc("causal")});
    ASSERT_TRUE(nd);
    install_recorder_tap(**nd);
    for (const std::string c : {"1", "2", "3", "4"})
      for (const std::string side : {"a", "b"}) {
        const std::string other = (side == "a" ? "b" : "a") + c;
        ASSERT_TRUE((*nd)->add(side + c, std::make_unique<lambda_actor>(
                                             [&done, other](context& ctx) {
                                               ctx.on<msg::ping>(
                                                   [&done, &ctx, other](const msg::ping& p, const envelope&) {
                                                     if (p.count < hops)
                                                       (void)ctx.send(other, msg::ping{p.count + 1, p.data});
                                                     else
                                                       done.push(p.data);
                                                   });
                                               return result<void>{};
                                             },
                                             [other, c, side](context& ctx) {
                                               if (side == "a") (void)ctx.send(other, msg::ping{0, c});
                                               return result<void>{};
                                             })));
      }
    attach_tap_sink(&sink);
    ASSERT_TRUE((*nd)->start());
    ASSERT_TRUE(done.wait_for(4, 60s));
    detach_tap_sink(&sink);
    (*nd)->stop();
  }
  ASSERT_TRUE(q.stop());
  EXPECT_EQ(q.counters().dropped, 0u);
  std::map<std::string, std::uint64_t> next;  // chain -> the count its next message must have
  std::uint64_t pings = 0;
  for (const auto& e : read_bag(path)) {
    if (!e.is<msg::ping>()) continue;
    auto p = decode<msg::ping>(e.payload);
    ASSERT_TRUE(p);
    ++pings;
    EXPECT_EQ(p->count, next[p->data]) << "chain " << p->data << " out of causal order in the bag";
    next[p->data] = p->count + 1;
  }
  EXPECT_EQ(pings, 4 * (hops + 1));
}

// A sink attached for a while: it must never be called once detach_tap_sink returned, and it
// must see an unbroken run of each ping-pong chain (a message routed between two it saw was
// routed while it was attached).
class window_sink final : public tap_sink {
 public:
  explicit window_sink(bag::recording_queue& q) : q_(q) {}
  void on_envelope(const envelope_ptr& env, std::uint64_t stamp) override {
    if (detached.load(std::memory_order_acquire)) late.fetch_add(1);
    if (env->is<msg::ping>())
      if (auto p = decode<msg::ping>(env->payload)) {
        std::lock_guard lock(mu_);
        seen[p->data].push_back(p->count);
      }
    calls.fetch_add(1);
    q_.push(env, stamp);
  }
  std::atomic<bool> detached{false};
  std::atomic<std::uint64_t> late{0}, calls{0};
  std::map<std::string, std::vector<std::uint64_t>> seen;  // chain -> ping counts

 private:
  std::mutex mu_;
  bag::recording_queue& q_;
};

TEST(recorder_tap, attach_and_detach_while_messages_flow_lose_nothing_and_never_call_a_detached_sink) {
  const auto path = testing::temp_path("attach-detach");
  auto w = bag::writer::create(path, bag::header::current());
  ASSERT_TRUE(w);
  bag::recording_queue q(std::move(*w), {});
  std::atomic<bool> stop{false};
  std::uint64_t calls = 0, windows_with_traffic = 0;
  {
    auto nd = node::create({.name = "attach1", .bind = testing::unique_ipc("attach1")});
    ASSERT_TRUE(nd);
    install_recorder_tap(**nd);
    // Two endless ping-pong chains (a1 <-> b1, a2 <-> b2), each message's count one more.
    for (const std::string c : {"1", "2"})
      for (const std::string side : {"a", "b"}) {
        const std::string other = (side == "a" ? "b" : "a") + c;
        ASSERT_TRUE((*nd)->add(side + c, std::make_unique<lambda_actor>(
                                             [&stop, other](context& ctx) {
                                               ctx.on<msg::ping>(
                                                   [&stop, &ctx, other](const msg::ping& p, const envelope&) {
                                                     if (!stop) (void)ctx.send(other, msg::ping{p.count + 1, p.data});
                                                   });
                                               return result<void>{};
                                             },
                                             [other, c, side](context& ctx) {
                                               if (side == "a") (void)ctx.send(other, msg::ping{0, c});
                                               return result<void>{};
                                             })));
      }
    ASSERT_TRUE((*nd)->start());
    // Until 100 windows have seen traffic (a loaded machine leaves some windows empty).
    for (int i = 0; windows_with_traffic < 100 && i < 4000; ++i) {
      auto sink = std::make_unique<window_sink>(q);
      attach_tap_sink(sink.get());
      std::this_thread::sleep_for(std::chrono::microseconds(50 * (i % 20)));
      detach_tap_sink(sink.get());
      sink->detached.store(true, std::memory_order_release);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      EXPECT_EQ(sink->late.load(), 0u) << "called after detach, window " << i;
      for (auto& [chain, counts] : sink->seen) {
        std::sort(counts.begin(), counts.end());
        EXPECT_EQ(std::adjacent_find(counts.begin(), counts.end()), counts.end()) << "seen twice, chain " << chain;
        EXPECT_EQ(counts.back() - counts.front() + 1, counts.size()) << "a gap in chain " << chain << ", window " << i;
      }
      calls += sink->calls.load();
      windows_with_traffic += sink->calls.load() > 0;
    }  // each sink destroyed right after its detach: a late call would touch freed memory
    stop = true;
    (*nd)->stop();
  }
  ASSERT_TRUE(q.stop());
  EXPECT_GE(windows_with_traffic, 100u);
  EXPECT_EQ(q.counters().recorded, calls);
  EXPECT_EQ(q.counters().dropped, 0u);
  EXPECT_EQ(read_bag(path).size(), calls);
}

TEST(player, re_publishes_a_bag_with_the_recorded_senders_and_stamps) {
  const auto path = testing::temp_path("play");
  {
    auto w = bag::writer::create(path, bag::header::current());
    ASSERT_TRUE(w);
    for (std::uint64_t i = 0; i < 300; ++i) {
      envelope e = testing::synthetic(i);
      e.kind = route::topic;
      e.destination = i % 2 ? "even" : "odd";
      e.correlation = 0;
      ASSERT_TRUE((*w)->write(e));
    }
    ASSERT_TRUE((*w)->close());
  }
  collector<envelope> seen;
  auto nd = node::create({.name = "play1", .bind = testing::unique_ipc("play1")});
  ASSERT_TRUE(nd);
  (void)recorder_actor_types();
  ASSERT_TRUE((*nd)->add("sink", std::make_unique<lambda_actor>([&](context& ctx) {
                           ctx.subscribe_raw("odd", [&](const envelope& e) { seen.push(e); });
                           return result<void>{};
                         })));
  ASSERT_TRUE((*nd)->add("player", actor_registry::global().make("gfdit.player"), {{"path", path}, {"rate", 0.0}}));
  ASSERT_TRUE((*nd)->start());
  ASSERT_TRUE(seen.wait_for(150, 10s));
  std::this_thread::sleep_for(50ms);
  const auto got = seen.items();
  ASSERT_EQ(got.size(), 150u);
  for (std::size_t k = 0; k < got.size(); ++k) {
    envelope e = testing::synthetic(2 * k);
    e.kind = route::topic;
    e.destination = "odd";
    e.correlation = 0;
    EXPECT_TRUE(testing::same_envelope(got[k], e)) << k;
  }
}

TEST(player, refuses_a_window_or_pace_it_cannot_play_before_it_starts) {
  const auto path = testing::temp_path("window");
  {
    auto w = bag::writer::create(path, bag::header::current());
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->write(testing::synthetic(1)));
    ASSERT_TRUE((*w)->close());
  }
  (void)recorder_actor_types();
  auto start_with = [&](nlohmann::json params) -> std::string {
    params["path"] = path;
    auto nd = node::create({.name = "window", .bind = testing::unique_ipc("window")});
    if (!nd) return "node: " + nd.err().what;
    if (auto a = (*nd)->add("player", actor_registry::global().make("gfdit.player"), params); !a) return a.err().what;
    auto r = (*nd)->start();
    (*nd)->stop();
    return r ? "" : r.err().what;
  };
  EXPECT_NE(start_with({{"start_s", 5.0}, {"end_s", 2.0}}).find("end_s (2.0) must be after start_s (5.0)"),
            std::string::npos);
  EXPECT_NE(start_with({{"start_s", -1.0}}).find("'start_s' = -1.0: must be >= 0"), std::string::npos);
  EXPECT_NE(start_with({{"end_s", -1.0}}).find("'end_s'"), std::string::npos);
  EXPECT_NE(start_with({{"rate", -2.0}}).find("'rate'"), std::string::npos);
  EXPECT_NE(start_with({{"batch", 0}}).find("'batch' = 0: must be >= 1"), std::string::npos);
  EXPECT_EQ(start_with({{"start_s", 1.0}, {"end_s", 2.0}, {"stop_at_end", false}}), "");  // a good window starts
}

TEST(player, paces_by_the_recorded_stamps_divided_by_rate) {
  const auto path = testing::temp_path("pace");
  {
    auto w = bag::writer::create(path, bag::header::current());
    ASSERT_TRUE(w);
    for (std::uint64_t i = 0; i < 3; ++i) {
      envelope e = testing::synthetic(1);
      e.time.wall_ns = static_cast<std::int64_t>(i) * 200'000'000;  // 0, 200, 400 ms
      ASSERT_TRUE((*w)->write(e));
    }
    ASSERT_TRUE((*w)->close());
  }
  collector<std::chrono::steady_clock::time_point> at;
  auto nd = node::create({.name = "play2", .bind = testing::unique_ipc("play2")});
  ASSERT_TRUE(nd);
  (void)recorder_actor_types();
  ASSERT_TRUE((*nd)->add("sink", std::make_unique<lambda_actor>([&](context& ctx) {
                           ctx.subscribe_raw(testing::synthetic(1).destination,
                                             [&](const envelope&) { at.push(std::chrono::steady_clock::now()); });
                           return result<void>{};
                         })));
  ASSERT_TRUE((*nd)->add("player", actor_registry::global().make("gfdit.player"), {{"path", path}, {"rate", 2.0}}));
  ASSERT_TRUE((*nd)->start());
  ASSERT_TRUE(at.wait_for(3, 5s));
  const auto t = at.items();
  const auto span = std::chrono::duration<double, std::milli>(t[2] - t[0]).count();
  EXPECT_GT(span, 170.0);  // 400 ms of bag at rate 2
  EXPECT_LT(span, 400.0);
}

}  // namespace
}  // namespace gfdit
