// `gfdit train` as a user runs it: real processes (the command starts one per worker), a model
// folder on disk that the serving side loads and `gfdit generate` draws from, a resumed run, and
// the mistakes a user makes, each a clear error with exit status 2 before any worker starts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "kernels/dit/model_card.hpp"
#include "tests/kernels/train/train_support.hpp"
#include "tests/launch/cli_run.hpp"

namespace fs = std::filesystem;
using gfdit::testing::read_bytes;
using gfdit::testing::run;

namespace {

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gfdit::train::testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST (dataset-fashion-mnist)";
    dir_ = fs::temp_directory_path() / ("gfdit-train-cli-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    gfdit::train::testing::write_card(dir_ / "card", gfdit::train::testing::tiny_fashion_config());
  }
  void TearDown() override { fs::remove_all(dir_); }

  gfdit::testing::run_result train(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {
        "train",    "--config", (dir_ / "card").string(), "--out", (dir_ / out).string(), "--limit", "256",
        "--warmup", "2"};
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a, dir_);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(TrainCli, TrainsAFolderThatLoadsAndDraws) {
  auto r = train("m", {"--steps", "3", "--batch", "8", "--degree", "2"});
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"step 1/3  loss ", "step 3/3", "grad norm", "images/s", "2 workers"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << " in\n" << r.output;
  const auto bytes = read_bytes(dir_ / "m" / "loss.svg");  // the loss curve, drawn from train_log.csv
  const std::string svg(bytes.begin(), bytes.end());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 100);
  EXPECT_NE(svg.find("at step 3"), std::string::npos);
  auto card = gfdit::dit::read_model_card(dir_ / "m");
  ASSERT_TRUE(card) << card.err().what;
  auto m = gfdit::dit::load_model(*card);
  ASSERT_TRUE(m) << m.err().what;
  EXPECT_EQ(m->config().hidden, 32);
  auto g = run({"generate", "--weights", (dir_ / "m").string(), "--class", "7", "--steps", "2", "--out",
                (dir_ / "p.png").string()},
               dir_);
  ASSERT_EQ(g.status, 0) << g.output;
  EXPECT_FALSE(read_bytes(dir_ / "p.png").empty());
}

TEST_F(TrainCli, StopsAndResumesToTheSameBytesAsOneRun) {
  ASSERT_EQ(train("whole", {"--steps", "4", "--batch", "4"}).status, 0);
  // Stopped as plain processes, resumed as the training graph: one run's bytes.
  ASSERT_EQ(train("parts", {"--steps", "4", "--batch", "4", "--stop-at", "2", "--degree", "2", "--processes"}).status,
            0);
  auto r = run({"train", "--out", (dir_ / "parts").string(), "--resume", "--config", (dir_ / "card").string(),
                "--limit", "256", "--degree", "4"},
               dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 3/4"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step 2/4"), std::string::npos) << r.output;
  EXPECT_EQ(read_bytes(dir_ / "parts" / "train_state.safetensors"),
            read_bytes(dir_ / "whole" / "train_state.safetensors"));
}

TEST_F(TrainCli, MembersChangeWhoTakesTheStepsNotTheBytes) {
  ASSERT_EQ(train("whole", {"--steps", "4", "--batch", "4"}).status, 0);
  // A plan written before the start: ranks 0 and 3 of a pool of four take every step.
  auto plan = run({"train", "--out", (dir_ / "elastic").string(), "--members", "0,3"}, dir_);
  ASSERT_EQ(plan.status, 0) << plan.output;
  auto r = train("elastic", {"--steps", "4", "--batch", "4", "--degree", "4"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 4/4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 workers"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("4 workers"), std::string::npos) << r.output;
  EXPECT_EQ(read_bytes(dir_ / "elastic" / "train_state.safetensors"),
            read_bytes(dir_ / "whole" / "train_state.safetensors"));
  auto bad = run({"train", "--out", (dir_ / "elastic").string(), "--members", "1,2"}, dir_);
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("rank 0 must take part"), std::string::npos) << bad.output;
}

TEST_F(TrainCli, CtrlCStopsARunningStepAtOnceAndSaysWhereTheRunStopped) {
  // Steps long enough (~10 s here) to be interrupted inside one, longer than the launcher waits
  // for a process to stop (3.5 s): a large batch of the tiny model.
  std::vector<std::string> a = {GFDIT_EXE,
                                "train",
                                "--config",
                                (dir_ / "card").string(),
                                "--out",
                                (dir_ / "stopped").string(),
                                "--limit",
                                "256",
                                "--steps",
                                "50",
                                "--batch",
                                "32768",
                                "--degree",
                                "2",
                                "--checkpoint-every",
                                "1"};
  gfdit::testing::child_process p(a, (dir_ / "stopped.log").string(), {{"GFDIT_MODELS", ""}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir_ / "stopped" / "train_state.safetensors")) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  p.signal(SIGINT);
  EXPECT_EQ(p.wait(std::chrono::seconds(60)), 1);
  std::ifstream in(dir_ / "stopped.log");
  const std::string log(std::istreambuf_iterator<char>(in), {});
  EXPECT_NE(log.find("stopped at step "), std::string::npos) << log;
  EXPECT_NE(log.find("--resume continues from its last checkpoint"), std::string::npos) << log;
  EXPECT_EQ(log.find("SIGKILL"), std::string::npos) << "every process stopped by itself:\n" << log;
}

TEST_F(TrainCli, MistakesAreClearErrors) {
  struct mistake {
    std::vector<std::string> args;
    const char* says;
  };
  ASSERT_EQ(train("done", {"--steps", "1", "--batch", "2"}).status, 0);
  const std::vector<mistake> table = {
      {{"--batch", "3", "--degree", "4"}, "each worker needs at least one sample"},
      {{"--data", (dir_ / "nowhere").string()}, "train-images-idx3-ubyte.gz not found"},
  };
  for (const auto& m : table) {
    auto r = train("x", m.args);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find(m.says), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "x")) << "nothing written";
  }
  auto again = train("done", {"--steps", "1", "--batch", "2"});
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.output.find("pass --resume"), std::string::npos) << again.output;
  auto empty = train("empty", {"--resume"});
  EXPECT_EQ(empty.status, 2);
  EXPECT_NE(empty.output.find("holds no training run"), std::string::npos) << empty.output;
  auto model = run({"train", "--model", "no-such-model", "--out", (dir_ / "y").string()}, dir_);
  EXPECT_EQ(model.status, 2);
  EXPECT_NE(model.output.find("no-such-model"), std::string::npos) << model.output;
  ASSERT_EQ(train("half", {"--steps", "2", "--stop-at", "1", "--batch", "2"}).status, 0);
  auto other_data = run(
      {"train", "--config", (dir_ / "card").string(), "--out", (dir_ / "half").string(), "--limit", "128", "--resume"},
      dir_);
  EXPECT_NE(other_data.status, 0);
  EXPECT_NE(other_data.output.find("drew from 256 pictures, this data set has 128"), std::string::npos)
      << other_data.output;
  auto finished = train("done", {"--resume"});
  EXPECT_NE(finished.status, 0);
  EXPECT_NE(finished.output.find("nothing left to do"), std::string::npos) << finished.output;
}
