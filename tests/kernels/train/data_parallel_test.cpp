// Data-parallel training across real processes: the checkpoint's files (master weights, AdamW
// moments, EMA, and the served bf16 weights) are the same bytes run to run, at degree 1, 2, 3
// and 4, after stopping and resuming at another degree, and when workers leave and join mid-run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "kernels/train/train_log.hpp"
#include "tests/kernels/train/train_support.hpp"
#include "tests/support/rank_processes.hpp"

namespace gfdit::train {
namespace {

namespace fs = std::filesystem;

const std::string worker =
    gfdit::testing::worker_binary("GFDIT_TRAIN_WORKER", "gfdit_train_worker", GFDIT_TRAIN_WORKER);

std::string bytes_of(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST (Debian package dataset-fashion-mnist)";
    root_ = fs::temp_directory_path() / ("gfdit-train-dp-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    testing::write_card(root_ / "card", testing::tiny_fashion_config());
  }
  void TearDown() override { fs::remove_all(root_); }

  // Runs `degree` ranks into OUT; true when every rank exited 0.
  bool train(int degree, const std::string& out, int steps, int stop_at = 0, bool resume = false) {
    const auto st = gfdit::testing::run_ranks(worker, "train", degree,
                                              {(root_ / "card").string(), (root_ / out).string(), std::to_string(steps),
                                               "8", std::to_string(stop_at), resume ? "1" : "0"},
                                              std::chrono::seconds(120));
    bool ok = true;
    for (const auto& s : st) ok = ok && s.exited && s.code == 0;
    return ok;
  }
  std::string state(const std::string& out) { return bytes_of(root_ / out / "train_state.safetensors"); }
  std::string served(const std::string& out) { return bytes_of(root_ / out / "model.safetensors"); }
  // A column of rank 0's log (train_log.hpp), one value a step, and its notes.
  template <class F>
  std::string column(const std::string& out, F value) {
    auto rows = read_log(root_ / out / "train_log.csv");
    if (!rows) return rows.err().what;
    std::string s;
    for (const auto& r : *rows) s += std::to_string(value(r)) + "\n";
    return s;
  }
  std::string steps(const std::string& out) {
    return column(out, [](const log_row& r) { return r.step; });
  }
  std::string workers(const std::string& out) {
    return column(out, [](const log_row& r) { return r.workers; });
  }
  std::string notes(const std::string& out) { return bytes_of(root_ / (out + ".notes")); }
  void plan(const std::string& out, const std::string& members) {
    fs::create_directories(root_ / out);
    std::ofstream(root_ / out / "members") << members;
  }

  fs::path root_;
};

TEST_F(DataParallel, WeightsAreTheSameBitsRunToRunAtDegreesOneToFourAndAfterResume) {
  ASSERT_TRUE(train(1, "d1", 4));
  ASSERT_TRUE(train(1, "d1-again", 4));
  ASSERT_TRUE(train(2, "d2", 4));
  ASSERT_TRUE(train(3, "d3", 4));  // not a power of two: 8 samples cut into 8 nodes, 3 + 3 + 2
  ASSERT_TRUE(train(4, "d4", 4));
  ASSERT_FALSE(state("d1").empty());
  EXPECT_EQ(state("d1"), state("d1-again"));
  EXPECT_EQ(state("d1"), state("d2"));
  EXPECT_EQ(state("d1"), state("d3"));
  EXPECT_EQ(state("d1"), state("d4"));
  EXPECT_EQ(served("d1"), served("d2"));
  EXPECT_EQ(served("d1"), served("d4"));
  // Stop after step 2 at degree 2, resume at degree 4 (and at 1, and at 3) to the end: the same bytes.
  ASSERT_TRUE(train(2, "resumed", 4, 2));
  const std::string half = state("resumed");
  EXPECT_NE(half, state("d1")) << "stopped early: another state";
  fs::copy(root_ / "resumed", root_ / "resumed-1", fs::copy_options::recursive);
  fs::copy(root_ / "resumed", root_ / "resumed-3", fs::copy_options::recursive);
  ASSERT_TRUE(train(4, "resumed", 4, 0, true));
  ASSERT_TRUE(train(1, "resumed-1", 4, 0, true));
  ASSERT_TRUE(train(3, "resumed-3", 4, 0, true));
  EXPECT_EQ(state("resumed"), state("d1"));
  EXPECT_EQ(state("resumed-1"), state("d1"));
  EXPECT_EQ(state("resumed-3"), state("d1"));
  EXPECT_EQ(served("resumed"), served("d1"));
  EXPECT_EQ(steps("resumed"), "1\n2\n3\n4\n");  // the log continues across the resume
  EXPECT_EQ(workers("resumed"), "2\n2\n4\n4\n");
}

TEST_F(DataParallel, WorkersLeavingAndJoiningMidRunChangeNoBit) {
  ASSERT_TRUE(train(1, "d1", 8));
  // A pool of four: ranks 2 and 3 leave at step 3, at step 5 rank 1 leaves and 2 and 3 join again
  // (they take rank 0's weights and optimizer state: theirs are two steps old), at step 7 rank 1
  // joins. Degrees 4, 2, 3, 4.
  plan("elastic", "3: 0 1\n5: 0,2,3   # three: 8 samples cut 3 + 3 + 2\n7: 0 1 2 3\n");
  ASSERT_TRUE(train(4, "elastic", 8));
  EXPECT_EQ(workers("elastic"), "4\n4\n2\n2\n3\n3\n4\n4\n");
  EXPECT_NE(notes("elastic").find("step 5: the group re-forms with ranks 0 2 3 (was 0 1)"), std::string::npos)
      << notes("elastic");
  ASSERT_FALSE(state("d1").empty());
  EXPECT_EQ(state("elastic"), state("d1"));
  EXPECT_EQ(served("elastic"), served("d1"));

  // A members file that does not parse is reported once and changes nothing; the run goes on.
  plan("refused", "0 1\n3: 1\n");
  ASSERT_TRUE(train(2, "refused", 8));
  EXPECT_EQ(workers("refused"), "2\n2\n2\n2\n2\n2\n2\n2\n");
  EXPECT_NE(notes("refused").find("members line 2: rank 0 must take part"), std::string::npos) << notes("refused");
  EXPECT_EQ(state("refused"), state("d1"));

  // Down to rank 0 alone from step 2.
  plan("shrinks", "2: 0\n");
  ASSERT_TRUE(train(3, "shrinks", 8));
  EXPECT_EQ(workers("shrinks"), "3\n1\n1\n1\n1\n1\n1\n1\n");
  EXPECT_EQ(state("shrinks"), state("d1"));
}

TEST_F(DataParallel, ADegreeThatCannotSplitTheBatchFailsOnEveryRank) {
  EXPECT_FALSE(train(9, "d9", 2));  // 9 workers, 8 samples
  EXPECT_FALSE(fs::exists(root_ / "d9" / "model.safetensors"));
  // Resuming a folder that holds no run is an error, not a fresh start.
  EXPECT_FALSE(train(1, "nothing", 2, 0, true));
}

}  // namespace
}  // namespace gfdit::train
