// `gfdit bag record` and `gfdit bag play` against a running graph (real processes, real
// ZeroMQ): a node of this test process publishes on a topic; the recorder joins it as a peer
// and keeps what it hears from then on, every message once and none missing, and says goodbye
// when it leaves; the player joins it and re-publishes the bag, which the node's subscriber
// gets as recorded.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "actors/runtime/node.hpp"
#include "bag/bag_reader.hpp"
#include "messages/example.hpp"
#include "tests/actors/runtime/test_support.hpp"
#include "tests/launch/launch_test_support.hpp"

namespace gfdit {
namespace {

using namespace std::chrono_literals;
using testing::collector;
using testing::lambda_actor;

envelope news(std::uint64_t i) {
  envelope e;
  e.kind = route::topic;
  e.destination = "news";
  e.sender = "newsroom";
  e.seq = i;
  e.time.logical = i;
  e.time.wall_ns = static_cast<std::int64_t>(1'000'000'000 + i * 1'000'000);
  e.type_id = type_id_of<msg::ping>;
  e.payload = encode(msg::ping{i, "item " + std::to_string(i)});
  return e;
}

// `e` is news item i as published: sender, route, topic, seq, stamps, type and payload.
bool is_news(const envelope& e, std::uint64_t i) {
  const envelope n = news(i);
  return e.sender == n.sender && e.kind == n.kind && e.destination == n.destination && e.seq == n.seq &&
         e.time.logical == n.time.logical && e.time.wall_ns == n.time.wall_ns && e.type_id == n.type_id &&
         e.payload == n.payload;
}

TEST(bag_cli, record_then_play_against_a_running_graph) {
  testing::temp_dir dir;
  const std::string bag = dir.path() + "/news.bag";
  collector<envelope> heard;
  // A short send timeout: a frame for a peer that is gone fails (and is counted) soon.
  auto nd = node::create({.name = "anchor", .bind = testing::unique_ipc("anchor"), .send_timeout = 200ms});
  ASSERT_TRUE(nd) << nd.err().what;
  ASSERT_TRUE((*nd)->add("reader", std::make_unique<lambda_actor>([&](context& ctx) {
                           ctx.subscribe_raw("news", [&](const envelope& e) { heard.push(e); });
                           return result<void>{};
                         })));
  ASSERT_TRUE((*nd)->start());
  const std::string peer = "anchor=" + (*nd)->endpoint();

  // Publish every 2 ms while the recorder joins, records for its 2 s, and leaves.
  std::atomic<bool> publishing{true};
  std::atomic<std::uint64_t> published{0};
  std::thread newsroom([&] {
    for (std::uint64_t i = 1; publishing; ++i) {
      ASSERT_TRUE((*nd)->inject(news(i)));
      published = i;
      std::this_thread::sleep_for(2ms);
    }
  });
  auto [rc, out] = testing::run({GFDIT_EXE, "bag", "record", bag, "--peer", peer, "--duration", "2"},
                                dir.path() + "/record.log", 30s);
  // Still publishing a while after the recorder left: it said goodbye, so none of this is
  // routed to it (before, each such message waited for it and failed).
  std::this_thread::sleep_for(100ms);
  const auto failed_when_it_left = (*nd)->transport_stats().failed;
  const auto published_when_it_left = published.load();
  std::this_thread::sleep_for(300ms);
  publishing = false;
  newsroom.join();
  std::this_thread::sleep_for(400ms);  // past the send timeout of the last one
  EXPECT_GT(published.load(), published_when_it_left + 50);
  EXPECT_EQ((*nd)->transport_stats().failed, failed_when_it_left);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("bag-recorder: joining the graph through " + peer), std::string::npos) << out;

  // What it recorded: from some message on, every one once, in order, as published.
  std::vector<std::uint64_t> seqs;
  {
    auto r = bag::reader::open(bag);
    ASSERT_TRUE(r) << r.err().what;
    bag::filter only_news;
    only_news.topics = {"news"};
    (*r)->set_filter(only_news);
    while (true) {
      auto n = (*r)->next();
      ASSERT_TRUE(n) << n.err().what;
      if (!*n) break;
      const envelope& e = (*n)->env;
      EXPECT_TRUE(is_news(e, e.seq)) << e.seq;
      seqs.push_back(e.seq);
    }
  }
  ASSERT_GT(seqs.size(), 100u);  // 2 s at one message per 2 ms, less the time to join
  for (std::size_t k = 1; k < seqs.size(); ++k) ASSERT_EQ(seqs[k], seqs[k - 1] + 1) << k;
  EXPECT_LE(seqs.back(), published.load());

  // Played back into the graph as fast as it goes: the reader gets exactly those messages.
  const std::size_t before = heard.size();
  auto [prc, pout] =
      testing::run({GFDIT_EXE, "bag", "play", bag, "--peer", peer, "--rate", "0"}, dir.path() + "/play.log", 30s);
  ASSERT_EQ(prc, 0) << pout;
  ASSERT_TRUE(heard.wait_for(before + seqs.size(), 10s)) << heard.size() - before << " of " << seqs.size();
  std::this_thread::sleep_for(100ms);
  const auto got = heard.items();
  ASSERT_EQ(got.size(), before + seqs.size());
  for (std::size_t k = 0; k < seqs.size(); ++k) {
    EXPECT_TRUE(is_news(got[before + k], seqs[k])) << k;
  }
  // A second recording to the same file is refused, and the first stays as it was; --force
  // replaces it.
  const auto first = testing::read_file(bag);
  auto [again, again_out] = testing::run({GFDIT_EXE, "bag", "record", bag, "--peer", peer, "--duration", "1"},
                                         dir.path() + "/again.log", 30s);
  EXPECT_EQ(again, 2) << again_out;
  EXPECT_NE(again_out.find("exists already (remove it, or set overwrite: true)"), std::string::npos) << again_out;
  EXPECT_EQ(testing::read_file(bag), first);
  auto [forced, forced_out] =
      testing::run({GFDIT_EXE, "bag", "record", bag, "--peer", peer, "--duration", "0.5", "--force"},
                   dir.path() + "/forced.log", 30s);
  EXPECT_EQ(forced, 0) << forced_out;
  EXPECT_NE(testing::read_file(bag), first);
  (*nd)->stop();
}

// Checking a launch file configures its actors only to validate them: a recorder's bag is not
// created by the check, and one that exists already is reported there, before any process runs.
TEST(bag_cli, checking_a_graph_with_a_recorder_creates_no_bag_and_reports_an_existing_one) {
  testing::temp_dir dir;
  const std::string bag = dir.path() + "/checked.bag";
  const std::string yaml = dir.path() + "/rec.yaml";
  {
    std::ofstream f(yaml);
    f << "graph: rec\nprocesses:\n  - name: p\n    actors:\n      - {type: gfdit.recorder, name: recorder, "
         "parameters: {path: \""
      << bag << "\"}}\n";
  }
  auto [rc, out] = testing::run({GFDIT_EXE, "check", yaml}, dir.path() + "/check.log", 30s);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_FALSE(std::filesystem::exists(bag));
  { std::ofstream(bag) << "an earlier recording"; }
  auto [rc2, out2] = testing::run({GFDIT_EXE, "check", yaml}, dir.path() + "/check2.log", 30s);
  EXPECT_NE(rc2, 0) << out2;
  EXPECT_NE(out2.find("exists already"), std::string::npos) << out2;
  EXPECT_EQ(testing::read_file(bag), "an earlier recording");
}

}  // namespace
}  // namespace gfdit
