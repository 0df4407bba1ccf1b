// launch/graphs/train.yaml as an operator runs it (`gfdit launch`, real processes, the World set
// up through the bus): the trainers' weights are the bytes of a one-process `gfdit train` run
// when a members plan changes the group mid-run, and when a trainer is killed mid-run.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kernels/dit/safetensors.hpp"
#include "kernels/train/train_log.hpp"
#include "tests/actors/serving_graph/launched_graph.hpp"
#include "tests/kernels/train/train_support.hpp"
#include "tests/launch/cli_run.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TrainGraph : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!train::testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST (Debian package dataset-fashion-mnist)";
    train::testing::write_card(g_.dir() / "card", train::testing::tiny_fashion_config());
  }

  // The recipe both ways: `gfdit train` in one process, and the graph's arguments.
  std::vector<std::string> cli(const std::string& out, int steps, int batch) {
    return {"train",
            "--config",
            (g_.dir() / "card").string(),
            "--out",
            (g_.dir() / out).string(),
            "--limit",
            "256",
            "--steps",
            std::to_string(steps),
            "--batch",
            std::to_string(batch),
            "--warmup",
            "2",
            "--lr",
            "0.002",
            "--seed",
            "11",
            "--init-seed",
            "5"};
  }
  std::vector<std::string> graph(const std::string& out, int pool, int steps, int batch) {
    return {"out:=" + (g_.dir() / out).string(),
            "model:=" + (g_.dir() / "card").string(),
            "pool:=" + std::to_string(pool),
            "steps:=" + std::to_string(steps),
            "batch:=" + std::to_string(batch),
            "limit:=256",
            "warmup:=2",
            "lr:=0.002",
            "seed:=11",
            "init_seed:=5",
            "collective_timeout_ms:=3000",
            "heartbeat_timeout_ms:=1000"};
  }
  std::string state(const std::string& out) {
    auto b = testing::read_bytes(g_.dir() / out / "train_state.safetensors");
    return {b.begin(), b.end()};
  }
  std::string workers(const std::string& out) {
    auto rows = train::read_log(train::log_path(g_.dir() / out));
    if (!rows) return rows.err().what;
    std::string s;
    for (const auto& r : *rows) s += std::to_string(r.workers) + " ";
    return s;
  }

  testing::launched_graph g_{"train-graph"};
};

TEST_F(TrainGraph, AMembersPlanChangesTheGroupNotTheBytes) {
  auto ref = testing::run(cli("ref", 6, 8), g_.dir());
  ASSERT_EQ(ref.status, 0) << ref.output;
  fs::create_directories(g_.dir() / "graph");
  std::ofstream(g_.dir() / "graph" / "members") << "3: 0 1\n5: 0 2 3\n";
  g_.start(GFDIT_SOURCE_DIR "/launch/graphs/train.yaml", graph("graph", 4, 6, 8));
  ASSERT_EQ(g_.wait(120s), 0) << g_.log();
  EXPECT_EQ(workers("graph"), "4 4 2 2 3 3 ");
  const auto log = g_.log();
  EXPECT_NE(log.find("step 5: the group re-forms with ranks 0 2 3 (was 0 1)"), std::string::npos) << log;
  EXPECT_NE(log.find("step 6/6  loss "), std::string::npos) << log;
  ASSERT_FALSE(state("ref").empty());
  EXPECT_EQ(state("graph"), state("ref"));
  EXPECT_EQ(testing::read_bytes(g_.dir() / "graph" / "model.safetensors"),
            testing::read_bytes(g_.dir() / "ref" / "model.safetensors"));
  EXPECT_EQ(testing::read_bytes(g_.dir() / "graph" / "loss.svg").size() > 0, true);
}

TEST_F(TrainGraph, MistakesAreFoundBeforeAnyProcessStarts) {
  const std::string file = GFDIT_SOURCE_DIR "/launch/graphs/train.yaml";
  auto pool = testing::run({"check", file, "out:=x", "pool:=9", "batch:=8"}, g_.dir());
  EXPECT_EQ(pool.status, 2) << pool.output;
  EXPECT_NE(pool.output.find("a global batch of 8 cannot be split over a pool of 9"), std::string::npos) << pool.output;
  auto lr = testing::run({"launch", file, "out:=x", "lr:=fast"}, g_.dir());
  EXPECT_EQ(lr.status, 2) << lr.output;
  EXPECT_NE(lr.output.find("global parameter 'lr' must be double"), std::string::npos) << lr.output;
  EXPECT_FALSE(fs::exists(g_.dir() / "x"));
}

TEST_F(TrainGraph, AKilledTrainerLeavesTheRunAndTheBytesStayTheSame) {
  const int steps = 300, batch = 64;
  auto ref = testing::run(cli("ref", steps, batch), g_.dir(), 300);
  ASSERT_EQ(ref.status, 0) << ref.output;
  g_.start(GFDIT_SOURCE_DIR "/launch/graphs/train.yaml", graph("graph", 4, steps, batch));
  // Once a few steps are logged, SIGKILL trainer 2 in the middle of the run.
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (true) {
    auto rows = train::read_log(train::log_path(g_.dir() / "graph"));
    if (rows && rows->size() >= 10) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << g_.log();
    std::this_thread::sleep_for(1ms);
  }
  const pid_t victim = g_.node_pid("trainer", 2);
  ASSERT_GT(victim, 0) << g_.log();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_EQ(g_.wait(300s), 0) << g_.log();
  const auto log = g_.log();
  EXPECT_NE(log.find("trainer 2 sent no heartbeat"), std::string::npos) << log;
  auto rows = train::read_log(train::log_path(g_.dir() / "graph"));
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), static_cast<std::size_t>(steps));
  EXPECT_EQ(rows->front().workers, 4);
  EXPECT_EQ(rows->back().workers, 3);
  EXPECT_EQ(state("graph"), state("ref"));
}

TEST_F(TrainGraph, AKilledControlProcessLosesNothingPastTheLastCheckpoint) {
  const int steps = 200, batch = 32;
  auto ref = testing::run(cli("ref", steps, batch), g_.dir(), 300);
  ASSERT_EQ(ref.status, 0) << ref.output;
  auto args = graph("graph", 2, steps, batch);
  args.push_back("checkpoint_every:=20");
  g_.start(GFDIT_SOURCE_DIR "/launch/graphs/train.yaml", args);
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!fs::exists(g_.dir() / "graph" / "train_state.safetensors")) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << g_.log();
    std::this_thread::sleep_for(1ms);
  }
  const pid_t control = g_.node_pid("control");
  ASSERT_GT(control, 0) << g_.log();
  ASSERT_EQ(::kill(control, SIGKILL), 0);
  EXPECT_NE(g_.wait(60s), 0) << "the coordinator is essential: " << g_.log();
  // The folder holds a checkpoint short of the end, never ahead of the log: the row of its step
  // is written before it. Resuming it (as the command, at another size) ends with one run's
  // bytes, and the log with each step once.
  ASSERT_NE(state("graph"), state("ref"));
  auto saved = dit::read_safetensors(g_.dir() / "graph" / "train_state.safetensors");
  ASSERT_TRUE(saved) << saved.err().what;
  const auto at = std::stoll(saved->metadata.at("gfdit.train.step"));
  auto logged = train::read_log(train::log_path(g_.dir() / "graph"));
  ASSERT_TRUE(logged);
  ASSERT_GE(logged->size(), static_cast<std::size_t>(at)) << "checkpoint of step " << at;
  EXPECT_EQ((*logged)[static_cast<std::size_t>(at) - 1].step, at);
  auto resumed = testing::run({"train", "--out", (g_.dir() / "graph").string(), "--resume", "--config",
                               (g_.dir() / "card").string(), "--limit", "256", "--degree", "3"},
                              g_.dir(), 300);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(state("graph"), state("ref"));
  auto rows = train::read_log(train::log_path(g_.dir() / "graph"));
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i) EXPECT_EQ((*rows)[static_cast<std::size_t>(i)].step, i + 1);
}

}  // namespace
}  // namespace gfdit
