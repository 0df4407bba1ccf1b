#include <gtest/gtest.h>

#include <cmath>

#include "actors/serving/cost_model.hpp"

namespace gfdit {
namespace {

const model_profile& profile(const char* name) {
  const model_profile* p = cost_model::stock().find(name);
  EXPECT_NE(p, nullptr) << name;
  return *p;
}

std::int32_t best_degree(const model_profile& p, std::int64_t tokens) {
  std::int32_t best = 1;
  for (auto d : cost_model::degrees(p))
    if (cost_model::stage_us(p, stage::denoise, tokens, d) < cost_model::stage_us(p, stage::denoise, tokens, best))
      best = d;
  return best;
}

TEST(cost_model, ships_every_stock_model) {
  for (auto name : {"dit-s-2", "dit-xl-2-256", "dit-xl-2-512", "mmdit-12b-standin", "video-dit-5b-standin",
                    "image-dit-20b-standin"})
    EXPECT_NE(cost_model::stock().find(name), nullptr) << name;
}

TEST(cost_model, qwen_image_like_mimics_the_published_table_and_its_best_degrees) {
  const auto& p = profile("image-dit-20b-standin");
  struct row {
    int side;
    double ms[3];
    std::int32_t best;
  };
  const row table[] = {{512, {155, 161, 172}, 1}, {1024, {605, 350, 207}, 4}, {1536, {1557, 880, 464}, 4}};
  for (const auto& r : table) {
    const auto t = cost_model::tokens(p, r.side, r.side, 1);
    for (int i = 0; i < 3; ++i) {
      const double got = cost_model::stage_us(p, stage::denoise, t, 1 << i) / 1000.0;
      EXPECT_NEAR(got, r.ms[i], 0.12 * r.ms[i]) << r.side << " degree " << (1 << i);
    }
    std::int32_t best = 1;
    for (std::int32_t d : {1, 2, 4})
      if (cost_model::stage_us(p, stage::denoise, t, d) < cost_model::stage_us(p, stage::denoise, t, best)) best = d;
    EXPECT_EQ(best, r.best) << r.side;
  }
}

TEST(cost_model, wan_5b_like_gives_the_gf_dit_single_gpu_times) {
  const auto& p = profile("video-dit-5b-standin");
  const auto s = cost_model::tokens(p, 832, 480, 49);
  const auto m = cost_model::tokens(p, 1280, 704, 81);
  EXPECT_EQ(s, 26 * 15 * 13);
  EXPECT_EQ(m, 40 * 22 * 21);
  EXPECT_NEAR(cost_model::request_us(p, s, 25, 1) / 1e6, 40.0, 2.0);
  EXPECT_NEAR(cost_model::request_us(p, m, 50, 1) / 1e6, 504.0, 10.0);
  EXPECT_NEAR(cost_model::request_us(p, m, 100, 1) / 1e6, 1002.0, 15.0);
  // Big videos keep scaling to 8 GPUs.
  EXPECT_EQ(best_degree(p, m), 8);
}

TEST(cost_model, small_inputs_stop_scaling_and_prepare_decode_ignore_degree) {
  const auto& p = profile("dit-xl-2-256");
  const auto t = cost_model::tokens(p, 256, 256, 1);
  EXPECT_EQ(t, 256);
  EXPECT_EQ(best_degree(p, t), 1);
  EXPECT_EQ(cost_model::stage_us(p, stage::decode, t, 1), cost_model::stage_us(p, stage::decode, t, 8));
}

TEST(cost_model, parses_yaml_and_json_and_rejects_bad_profiles) {
  auto y = cost_model::from_yaml("model: m\nstages: {step: {a_us: 10, bp_us: 1}}\n");
  ASSERT_TRUE(y) << y.err().what;
  EXPECT_DOUBLE_EQ(cost_model::stage_us(*y->find("m"), stage::denoise, 1000, 1), 1010.0);
  auto j = cost_model::from_yaml(R"({"models": [{"model": "a"}, {"model": "b", "max_degree": 2}]})");
  ASSERT_TRUE(j) << j.err().what;
  EXPECT_EQ(cost_model::degrees(*j->find("b")), (std::vector<std::int32_t>{1, 2}));
  EXPECT_FALSE(cost_model::from_yaml("stages: {}"));                 // no model name
  EXPECT_FALSE(cost_model::from_yaml("model: m\nmax_degree: 0\n"));  // out of range
  EXPECT_FALSE(cost_model::from_yaml("model: [unclosed"));           // not YAML
  EXPECT_FALSE(cost_model::from_file("/nonexistent/profile.yaml"));
}

}  // namespace
}  // namespace gfdit
