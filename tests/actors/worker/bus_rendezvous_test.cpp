// World set-up through the bus. First the rendezvous' two sides on real threads (the creating
// thread waits, the "actor" thread answers); then real processes: a hub process (the membership
// actor) and four rank processes that each create a host-backend World through it, exactly as
// the cpu worker does, and run a deterministic all_reduce whose bits are checked against the
// member-order sum computed here. Failures come back as errors, fast: a missing rank at the
// timeout (naming it), two processes claiming one rank at once.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "actors/worker/bus_rendezvous.hpp"
#include "tests/actors/runtime/test_support.hpp"
#include "tests/actors/worker/world_bus_values.hpp"

namespace gfdit {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using testing::child_process;

msg::world_blobs answer(std::uint32_t round, std::vector<std::string> blobs, std::string error = "",
                        bool timed_out = false, std::string world = "w") {
  msg::world_blobs m{std::move(world), round, {}, std::move(error), timed_out};
  for (auto& b : blobs) m.blobs.emplace_back(b.begin(), b.end());
  return m;
}

// Waits (bounded) until the creating thread has queued its join, as the actor's pump would.
std::optional<msg::world_join> next_join(bus_rendezvous& rv) {
  for (int i = 0; i < 5000; ++i) {
    if (auto j = rv.take_join()) return j;
    std::this_thread::sleep_for(1ms);
  }
  return std::nullopt;
}

TEST(bus_rendezvous, each_round_is_one_join_out_and_the_matching_answer_back) {
  bus_rendezvous rv("w", 1, 2);
  auto gathered = std::async(std::launch::async, [&] {
    std::vector<std::vector<std::string>> rounds;
    for (int r = 0; r < 2; ++r) {
      auto all = rv.all_gather("mine-" + std::to_string(r), 5000ms);
      if (!all) return rounds;
      rounds.push_back(*all);
    }
    return rounds;
  });
  for (std::uint32_t round = 0; round < 2; ++round) {
    auto j = next_join(rv);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->world, "w");
    EXPECT_EQ(j->rank, 1);
    EXPECT_EQ(j->size, 2);
    EXPECT_EQ(j->round, round);
    EXPECT_EQ(j->timeout_ms, 5000);
    EXPECT_EQ(std::string(j->blob.begin(), j->blob.end()), "mine-" + std::to_string(round));
    EXPECT_FALSE(rv.take_join());  // handed out once
    // Answers to another world or round are not ours.
    rv.deliver(answer(round + 1, {"x", "y"}));
    rv.deliver(answer(round, {"x", "y"}, "", false, "other"));
    rv.deliver(answer(round, {"r0-" + std::to_string(round), "r1-" + std::to_string(round)}));
  }
  const auto rounds = gathered.get();
  ASSERT_EQ(rounds.size(), 2u);
  EXPECT_EQ(rounds[1], (std::vector<std::string>{"r0-1", "r1-1"}));
}

TEST(bus_rendezvous, hub_failures_become_errors_timeout_when_a_rank_was_missing) {
  bus_rendezvous rv("w", 0, 2);
  auto a = std::async(std::launch::async, [&] { return rv.all_gather("a", 5000ms); });
  ASSERT_TRUE(next_join(rv));
  rv.deliver(answer(0, {}, "missing rank(s) 1", true));
  auto r = a.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::timeout);
  EXPECT_NE(r.err().what.find("missing rank(s) 1"), std::string::npos);

  auto b = std::async(std::launch::async, [&] { return rv.all_gather("b", 5000ms); });
  ASSERT_TRUE(next_join(rv));
  rv.deliver(answer(1, {}, "rank 0 joined twice"));
  auto r2 = b.get();
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.err().code, errc::invalid_argument);

  auto c = std::async(std::launch::async, [&] { return rv.all_gather("c", 5000ms); });
  ASSERT_TRUE(next_join(rv));
  rv.fail(make_error(errc::unreachable, "no hub"));
  auto r3 = c.get();
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.err().code, errc::unreachable);
}

TEST(bus_rendezvous, without_an_answer_it_times_out_and_cancel_wakes_a_waiter_at_once) {
  bus_rendezvous rv("w", 0, 2);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = rv.all_gather("a", 100ms);
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::timeout);
  EXPECT_GE(waited, 100ms + bus_rendezvous::answer_grace);
  EXPECT_FALSE(rv.take_join());  // a join of an abandoned round is never sent late

  auto b = std::async(std::launch::async, [&] { return rv.all_gather("b", 60000ms); });
  ASSERT_TRUE(next_join(rv));
  rv.cancel();
  ASSERT_EQ(b.wait_for(5s), std::future_status::ready);
  auto rb = b.get();
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.err().code, errc::cancelled);
}

// ---- real processes ----------------------------------------------------------------------

struct rank_result {
  bool ok = false;
  std::string code;  // errc when not ok
  std::string what;
  std::uint64_t sum_hash = 0;
  std::string gathered;
};

class world_graph {
 public:
  world_graph() {
    fs::create_directories(dir_);
    hub_ = std::make_unique<child_process>(
        std::vector<std::string>{GFDIT_WORLD_BUS_PEER, "--name", "control", "--bind", control_ep_, "--hub"},
        (dir_ / "control.log").string());
  }
  ~world_graph() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void add_rank(const std::string& name, int rank, int size, int timeout_ms) {
    ranks_.emplace_back(
        name, std::make_unique<child_process>(
                  std::vector<std::string>{GFDIT_WORLD_BUS_PEER, "--name", name, "--bind", testing::unique_ipc(name),
                                           "--peer", "control=" + control_ep_, "--rank", std::to_string(rank), "--size",
                                           std::to_string(size), "--world", "test", "--timeout-ms",
                                           std::to_string(timeout_ms), "--out", (dir_ / (name + ".out")).string()},
                  (dir_ / (name + ".log")).string()));
  }

  // Waits for every rank process to exit (each stops itself once it has written its result).
  std::map<std::string, rank_result> results() {
    std::map<std::string, rank_result> out;
    for (auto& [name, p] : ranks_) {
      const int status = p->wait(60s);
      EXPECT_EQ(status, 0) << name << " log:\n" << slurp(dir_ / (name + ".log"));
      std::istringstream in(slurp(dir_ / (name + ".out")));
      rank_result r;
      std::string head;
      std::getline(in, head);
      r.ok = head == "ok";
      if (r.ok) {
        std::string h;
        std::getline(in, h);
        r.sum_hash = h.empty() ? 0 : std::stoull(h);
        std::getline(in, r.gathered);
      } else {
        r.code = head.substr(head.find(' ') + 1);
        std::getline(in, r.what);
      }
      out[name] = r;
    }
    return out;
  }

  std::string hub_log() const { return slurp(dir_ / "control.log"); }

 private:
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  fs::path dir_ =
      fs::temp_directory_path() / ("gfdit-world-bus-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::string control_ep_ = testing::unique_ipc("control");
  std::unique_ptr<child_process> hub_;
  std::vector<std::pair<std::string, std::unique_ptr<child_process>>> ranks_;
};

std::string rank_name(int r) {
  std::string n = "r";  // (not "r" + to_string(r): GCC 12 warns falsely, -Wrestrict)
  n += std::to_string(r);
  return n;
}

TEST(bus_rendezvous, four_processes_create_a_host_world_through_the_hub_and_all_reduce_bitwise) {
  const std::vector<std::int32_t> members{3, 2, 1, 0};  // the peers' group: every rank, reversed
  const auto expected = testing::member_order_sum(members);
  const std::vector<std::int32_t> ascending{0, 1, 2, 3};
  ASSERT_NE(testing::bits_hash(expected), testing::bits_hash(testing::member_order_sum(ascending)))
      << "the values should make the summation order visible in the bits";

  world_graph g;
  for (int r = 0; r < 4; ++r) g.add_rank(rank_name(r), r, 4, 20000);
  const auto res = g.results();
  ASSERT_EQ(res.size(), 4u);
  for (const auto& [name, r] : res) {
    EXPECT_TRUE(r.ok) << name << ": " << r.code << " " << r.what << "\nhub log:\n" << g.hub_log();
    EXPECT_EQ(r.sum_hash, testing::bits_hash(expected)) << name << ": all_reduce bits differ from the member-order sum";
    EXPECT_EQ(r.gathered, "3,2,1,0") << name;
  }
}

TEST(bus_rendezvous, a_rank_that_never_comes_fails_the_others_at_the_timeout_naming_it) {
  world_graph g;
  for (int r = 0; r < 3; ++r) g.add_rank(rank_name(r), r, 4, 2000);
  const auto t0 = std::chrono::steady_clock::now();
  const auto res = g.results();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  ASSERT_EQ(res.size(), 3u);
  for (const auto& [name, r] : res) {
    EXPECT_FALSE(r.ok) << name;
    EXPECT_EQ(r.code, "timeout") << name << ": " << r.what;
    // "3 of 4 ranks joined; missing rank(s) 3" (a rank started more than 2 s late would find
    // the round gone and time out alone, still naming rank 3 last).
    EXPECT_NE(r.what.find("ranks joined; missing rank(s) "), std::string::npos) << name << ": " << r.what;
    EXPECT_EQ(r.what.back(), '3') << name << ": " << r.what;
  }
}

TEST(bus_rendezvous, two_processes_claiming_one_rank_fail_at_once_not_at_the_timeout) {
  world_graph g;
  g.add_rank("a", 0, 2, 30000);
  g.add_rank("b", 0, 2, 30000);
  const auto t0 = std::chrono::steady_clock::now();
  const auto res = g.results();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);  // well before the 30 s timeout
  ASSERT_EQ(res.size(), 2u);
  for (const auto& [name, r] : res) {
    EXPECT_FALSE(r.ok) << name;
    EXPECT_EQ(r.code, "invalid_argument") << name << ": " << r.what;
    EXPECT_NE(r.what.find("rank 0 joined twice"), std::string::npos) << name << ": " << r.what;
  }
}

}  // namespace
}  // namespace gfdit
