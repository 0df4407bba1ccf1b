// `gfdit replay BAG --replace A`: a ping-pong graph recorded live (`gfdit launch`, two
// processes, real ZeroMQ), then run again with one actor swapped for a player of its recorded
// outputs. The remaining real actor gets exactly the recorded messages (same senders, seq,
// stamps, destinations), each only after the live input that caused it, and sends what it sent
// in the recording; a changed run diverges; unknown actors and bags without launch text are
// clear errors.
#include <gtest/gtest.h>

#include <map>

#include "bag/bag_reader.hpp"
#include "bag/bag_writer.hpp"
#include "messages/example.hpp"
#include "tests/launch/launch_test_support.hpp"

namespace gfdit {
namespace {

using namespace std::chrono_literals;

constexpr int pings = 30;

// The recorder sits in the ponger's process: its tap sees the pings arriving and the pongs
// leaving. launch_file puts this text (and its path) in the bag's header.
constexpr const char* graph = R"yaml(graph: pp_replace
args:
  bag: {default: ""}
  count: {default: 30}
  period_ms: {default: 5}
processes:
  - name: ponger
    actors:
      - type: gfdit.recorder
        name: recorder
        parameters: {path: "$(arg bag)", launch_file: "$(dirname)/pp.yaml", flush_ms: 20}
      - {type: example.ponger, name: ponger}
  - name: pinger
    exit_on_done: true
    actors:
      - {type: example.pinger, name: pinger, parameters: {count: $(arg count), period_ms: $(arg period_ms)}}
)yaml";

std::vector<envelope> read_all(const std::string& path) {
  std::vector<envelope> out;
  auto r = bag::reader::open(path);
  EXPECT_TRUE(r) << (r ? "" : r.err().what);
  if (!r) return out;
  while (true) {
    auto n = (*r)->next();
    EXPECT_TRUE(n) << (n ? "" : n.err().what);
    if (!n || !*n) break;
    out.push_back(std::move((*n)->env));
  }
  return out;
}

std::vector<envelope> of(const std::vector<envelope>& all, const std::string& sender) {
  std::vector<envelope> out;
  for (const auto& e : all)
    if (e.sender == sender) out.push_back(e);
  return out;
}

// Position in the bag of each ping (by count) and each pong (by count).
// A player's outputs are the recording, envelope for envelope: sender, seq, stamps, destination,
// trace, payload.
void expect_played_verbatim(const std::vector<envelope>& recorded, const std::vector<envelope>& replayed,
                            const std::string& sender) {
  const auto rec = of(recorded, sender), rep = of(replayed, sender);
  ASSERT_EQ(rep.size(), rec.size()) << sender;
  for (std::size_t i = 0; i < rec.size(); ++i)
    EXPECT_EQ(encode_envelope(rep[i]), encode_envelope(rec[i])) << sender << " output " << i;
}

std::map<std::uint64_t, std::size_t> positions(const std::vector<envelope>& all, const std::string& topic) {
  std::map<std::uint64_t, std::size_t> out;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i].kind != route::topic || all[i].destination != topic) continue;
    const auto count =
        topic == "ping" ? decode<msg::ping>(all[i].payload)->count : decode<msg::pong>(all[i].payload)->count;
    out.emplace(count, i);
  }
  return out;
}

class Replace : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::temp_dir();
    dir_->write("pp.yaml", graph);
    auto [status, output] = testing::run({GFDIT_EXE, "launch", dir_->path() + "/pp.yaml", "bag:=" + bag()},
                                         dir_->path() + "/record.log", 30s);
    record_status_ = status;
    record_output_ = output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string bag() { return dir_->path() + "/run.bag"; }
  static std::pair<int, std::string> replay(std::vector<std::string> args, const std::string& log) {
    args.insert(args.begin(), {GFDIT_EXE, "replay", bag()});
    return testing::run(std::move(args), dir_->path() + "/" + log, 30s);
  }

  void SetUp() override {
    ASSERT_EQ(record_status_, 0) << record_output_;
    recorded_ = read_all(bag());
    ASSERT_EQ(of(recorded_, "pinger").size(), static_cast<std::size_t>(pings));
    ASSERT_EQ(of(recorded_, "ponger").size(), static_cast<std::size_t>(pings));
  }

  static testing::temp_dir* dir_;
  static int record_status_;
  static std::string record_output_;
  std::vector<envelope> recorded_;
};

testing::temp_dir* Replace::dir_ = nullptr;
int Replace::record_status_ = -1;
std::string Replace::record_output_;

TEST_F(Replace, RealPingerAmongARecordedPonger) {
  const std::string work = dir_->path() + "/w-ponger";
  auto [status, out] = replay({"--replace", "ponger", "--keep", work}, "replace-ponger.log");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("identical: every actor sent what it sent in the recording (60 messages)"), std::string::npos)
      << out;
  // The real pinger got every recorded pong (its own summary at shutdown).
  EXPECT_NE(out.find("ping-pong: 30 round trips"), std::string::npos) << out;
  EXPECT_NE(out.find("player ponger: played 30"), std::string::npos) << out;

  const auto replayed = read_all(work + "/replay.bag");
  expect_played_verbatim(recorded_, replayed, "ponger");
  // The real pinger sent what it sent in the recording (seq and payload; stamps are today's).
  const auto rec_pings = of(recorded_, "pinger"), rep_pings = of(replayed, "pinger");
  ASSERT_EQ(rep_pings.size(), rec_pings.size());
  for (std::size_t i = 0; i < rec_pings.size(); ++i) {
    EXPECT_EQ(rep_pings[i].seq, rec_pings[i].seq);
    EXPECT_EQ(rep_pings[i].payload, rec_pings[i].payload);
    EXPECT_NE(rep_pings[i].time.wall_ns, rec_pings[i].time.wall_ns);  // a live run, not a copy
  }
  // Each recorded pong went out only after the live ping it answered had arrived.
  const auto ping_at = positions(replayed, "ping"), pong_at = positions(replayed, "pong");
  ASSERT_EQ(pong_at.size(), static_cast<std::size_t>(pings));
  for (const auto& [count, at] : pong_at) {
    ASSERT_TRUE(ping_at.count(count)) << count;
    EXPECT_LT(ping_at.at(count), at) << "pong " << count << " overtook its ping";
  }
}

TEST_F(Replace, RealPongerAmongARecordedPinger) {
  const std::string work = dir_->path() + "/w-pinger";
  auto [status, out] = replay({"--replace", "pinger", "--keep", work, "--linger", "0.3"}, "replace-pinger.log");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("identical: every actor sent what it sent in the recording (60 messages)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("the players finished"), std::string::npos) << out;

  const auto replayed = read_all(work + "/replay.bag");
  // The real ponger received the recorded pings, bit for bit...
  expect_played_verbatim(recorded_, replayed, "pinger");
  // ...and answered each as it did in the recording, continuing the recorded trace.
  const auto rec_pongs = of(recorded_, "ponger"), rep_pongs = of(replayed, "ponger");
  ASSERT_EQ(rep_pongs.size(), rec_pongs.size());
  for (std::size_t i = 0; i < rec_pongs.size(); ++i) {
    EXPECT_EQ(rep_pongs[i].seq, rec_pongs[i].seq);
    EXPECT_EQ(rep_pongs[i].payload, rec_pongs[i].payload);
    EXPECT_EQ(rep_pongs[i].trace_id, rec_pongs[i].trace_id);
  }
}

TEST_F(Replace, GateHoldsEachRecordedOutputUntilItsLiveCause) {
  // No pacing, and a pinger 4x slower than recorded (the pings' contents do not depend on it):
  // only the gate keeps each pong behind its ping.
  const std::string work = dir_->path() + "/w-gate";
  auto [status, out] = replay({"--replace", "ponger", "--rate", "0", "period_ms:=20", "--keep", work}, "gate.log");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("identical: every actor sent what it sent in the recording (60 messages)"), std::string::npos)
      << out;
  const auto held = out.find("held for their cause ");
  ASSERT_NE(held, std::string::npos) << out;
  EXPECT_GE(std::stoi(out.substr(held + 21)), 20) << out;  // those whose ping came before the player ran are not held
  const auto replayed = read_all(work + "/replay.bag");
  const auto ping_at = positions(replayed, "ping"), pong_at = positions(replayed, "pong");
  ASSERT_EQ(pong_at.size(), static_cast<std::size_t>(pings));
  for (const auto& [count, at] : pong_at) {
    ASSERT_TRUE(ping_at.count(count)) << count;
    EXPECT_LT(ping_at.at(count), at) << "pong " << count << " overtook its ping";
  }

  // Without the gate the recorded pongs all go at once: the pinger has its 30 long before it
  // has sent its 30 pings, stops, and diverges.
  std::tie(status, out) = replay({"--replace", "ponger", "--rate", "0", "period_ms:=20", "--no-gate"}, "no-gate.log");
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find(R"({"actor":"pinger","actual":null,)"), std::string::npos) << out;
}

TEST_F(Replace, AChangedRunDivergesAtItsFirstDifferentOutput) {
  // The pinger told to stop after 20: it sends 20 of its 30 recorded pings.
  auto [status, out] = replay({"--replace", "ponger", "count:=20"}, "diverge.log");
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("diverges at output 20"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"actor":"pinger","actual":null,"expected":)"), std::string::npos) << out;
  // The player stopped with the graph too, 10 pongs short: both say so.
  EXPECT_NE(out.find("diverged: 2 actor(s)"), std::string::npos) << out;
}

TEST_F(Replace, ClearErrors) {
  auto [status, out] = replay({"--replace", "pingr"}, "unknown.log");
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("error: no actor 'pingr' in graph 'pp_replace' (actors: pinger, ponger, recorder)"),
            std::string::npos)
      << out;
  std::tie(status, out) = replay({"--replace", "recorder"}, "recorder.log");
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("'recorder' is a gfdit.recorder"), std::string::npos) << out;
  std::tie(status, out) = replay({"--replace", "ponger", "--actor", "ponger"}, "both.log");
  EXPECT_EQ(status, 2) << out;

  // A bag whose recorder stored no launch text.
  const std::string bare = dir_->path() + "/bare.bag";
  {
    auto w = bag::writer::create(bare, bag::header::current(""));
    ASSERT_TRUE(w);
    for (const auto& e : recorded_) ASSERT_TRUE((*w)->write(e));
    ASSERT_TRUE((*w)->close());
  }
  std::tie(status, out) =
      testing::run({GFDIT_EXE, "replay", bare, "--replace", "ponger"}, dir_->path() + "/bare.log", 30s);
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("holds no launch-file text"), std::string::npos) << out;
  // ...replays with --launch.
  std::tie(status, out) = testing::run({GFDIT_EXE, "replay", bare, "--replace", "pinger", "--launch",
                                        dir_->path() + "/pp.yaml", "--rate", "0", "--linger", "0.3"},
                                       dir_->path() + "/bare-launch.log", 30s);
  EXPECT_NE(out.find("player pinger: played 30"), std::string::npos) << out;
  // No recorder of that graph made this bag: nothing to compare, said so.
  EXPECT_NE(out.find("outputs are not compared"), std::string::npos) << out;
  EXPECT_EQ(status, 0) << out;
}

}  // namespace
}  // namespace gfdit
