// `gfdit profile` as a user runs it: the shipped fashion-dit measured on real cpu worker backends
// (one process per rank), a profile file the cost model reads back with the times it measured;
// degrees the model cannot take noted in the file, and the mistakes a user makes, each a clear
// error with exit status 2 and no file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "actors/serving/cost_model.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "tests/launch/cli_run.hpp"

namespace fs = std::filesystem;
using gfdit::testing::run;

namespace {

class ProfileCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gfdit-profile-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string text(const fs::path& p) {
    std::stringstream ss;
    ss << std::ifstream(p).rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

}  // namespace

TEST_F(ProfileCli, MeasuresFashionDitOnCpuWorkersAndWritesAProfileTheSchedulerReads) {
  const fs::path out = dir_ / "fashion.yaml";
  const std::string model = "fashion-dit=" + std::string(GFDIT_SOURCE_DIR) + "/models/fashion-dit";
  auto r =
      run({"profile", "--model", model, "--degrees", "1,2,3", "--steps", "1", "--reps", "1", "--out", out.string()},
          dir_, 240);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("fashion-dit: degree 2: prepare"), std::string::npos) << r.output;
  const std::string y = text(out);
  // 4 heads: degree 3 is noted, not fatal.
  EXPECT_NE(y.find("# fashion-dit: degree 3: its 4 heads do not split over 3 ranks"), std::string::npos) << y;

  auto m = gfdit::cost_model::from_file(out.string());
  ASSERT_TRUE(m) << m.err().what << "\n" << y;
  const gfdit::model_profile* p = m->find("fashion-dit");
  ASSERT_NE(p, nullptr) << y;
  EXPECT_EQ(p->max_degree, 2);
  EXPECT_EQ(gfdit::cost_model::tokens(*p, 28, 28, 1), 49);
  EXPECT_EQ(p->bytes_per_token, 16 * 4);  // a 4x4 grey patch of floats

  // The profile predicts, at each degree, the step it measured (the comment lines carry them):
  // exactly when degree 2 was faster but not more than twice, else (a loaded machine) as a fit
  // of one term, no negative one, between the two.
  const std::regex line(R"(# fashion-dit degree (\d+): prepare ([0-9.]+) us, step ([0-9.]+) us)");
  std::map<int, double> step;
  for (std::sregex_iterator it(y.begin(), y.end(), line), end; it != end; ++it)
    step[std::stoi((*it)[1])] = std::stod((*it)[3]);
  ASSERT_EQ(step.size(), 2u) << y;
  const bool scales = step[2] < step[1] && step[2] >= step[1] / 2;
  for (const auto& [d, s] : step) {
    EXPECT_GT(s, 0);
    const double predicted = gfdit::cost_model::stage_us(*p, gfdit::stage::denoise, 49, d);
    if (scales)
      EXPECT_NEAR(predicted, s, s * 1e-3 + 0.1) << "degree " << d << "\n" << y;
    else
      EXPECT_TRUE(predicted >= std::min(step[1], step[2]) - 0.1 && predicted <= std::max(step[1], step[2]) + 0.1)
          << "degree " << d << "\n"
          << y;
  }
  EXPECT_GE(p->step.a_us, 0);
  EXPECT_GE(p->step.bp_us, 0);
  EXPECT_GT(p->reshard_fixed_us, 0);  // a move onto the degree-2 group was measured
}

TEST_F(ProfileCli, MistakesAreClearErrorsAndWriteNothing) {
  const fs::path out = dir_ / "p.yaml";
  auto r = run({"profile", "--model", "no-such-model", "--out", out.string()}, dir_);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;

  const std::string model = "fashion-dit=" + std::string(GFDIT_SOURCE_DIR) + "/models/fashion-dit";
  r = run({"profile", "--model", model, "--degrees", "8", "--out", out.string()}, dir_);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("its 4 heads do not split over 8 ranks"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no model could be measured; nothing written"), std::string::npos) << r.output;

  r = run({"profile", "--model", "=nowhere", "--out", out.string()}, dir_);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("write NAME=DIR"), std::string::npos) << r.output;

  if (!gfdit::dit::gpu_available()) {
    r = run({"profile", "--model", model, "--device", "gpu", "--out", out.string()}, dir_);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("no CUDA device"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(out));
}
