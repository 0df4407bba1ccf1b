// AdamW and its schedule against train.py's formulas, the fixed-tree reduction, the per-sample
// draws, training steps in one process, and the checkpoint's round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "kernels/dit/model_card.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/train/adamw.hpp"
#include "kernels/train/checkpoint.hpp"
#include "kernels/train/membership.hpp"
#include "kernels/train/reduce.hpp"
#include "kernels/train/train_log.hpp"
#include "kernels/train/trainer.hpp"
#include "tests/kernels/train/train_support.hpp"

namespace gfdit::train {
namespace {

namespace fs = std::filesystem;
using testing::tiny_fashion_config;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(AdamW, ScheduleIsWarmupThenCosineToATenth) {
  adamw_options o;  // lr 5e-4, warm-up 500
  EXPECT_FLOAT_EQ(learning_rate(o, 0, 12000), 5e-4f / 500);
  EXPECT_FLOAT_EQ(learning_rate(o, 499, 12000),
                  5e-4f * static_cast<float>(0.1 + 0.45 * (1 + std::cos(499.0 / 12000 * 3.14159265))));
  EXPECT_NEAR(learning_rate(o, 6000, 12000), 5e-4 * 0.55, 1e-9);
  EXPECT_NEAR(learning_rate(o, 11999, 12000), 5e-4 * 0.1, 1e-9);
}

TEST(AdamW, StepIsTorchAdamWWithClipping) {
  adamw_options o;
  o.warmup = 1, o.lr = 1e-2f, o.weight_decay = 0.1f, o.clip = 1.0f;
  std::vector<float> p = {0.5f, -1.0f, 2.0f}, g0 = {3.0f, 4.0f, 0.0f}, g = g0;  // norm 5: clipped to 1
  adamw_state s = adamw_init(p);
  const double norm = grad_norm(g);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  adamw_step(o, 100, norm, g, p, s);
  // torch.optim.AdamW, first step: m = (1 - b1) g, v = (1 - b2) g^2, both bias-corrected to g and
  // g^2, so the update is lr * g / (|g| + eps) after decaying the weight by lr * wd.
  const float lr = learning_rate(o, 0, 100), coef = static_cast<float>(1.0 / (5.0 + 1e-6));
  const float p0[3] = {0.5f, -1.0f, 2.0f};
  for (int i = 0; i < 3; ++i) {
    const double gi = g0[i] * coef, want = p0[i] * (1 - lr * 0.1) - lr * gi / (std::abs(gi) + 1e-8);
    EXPECT_NEAR(p[i], want, 1e-6) << i;
    EXPECT_FLOAT_EQ(g[i], g0[i] * coef) << "the gradient is clipped in place";
  }
  EXPECT_EQ(s.step, 1);
  EXPECT_FLOAT_EQ(s.ema[0], 0.1f * 0.5f + 0.9f * p[0]);  // decay min(0.9995, 1/10)
}

// What trainer::step does with its workers, without the processes: each worker sums its run of
// the cut's nodes, the runs are joined, and the tree is finished above the cut.
std::vector<float> split_sum(std::int64_t B, int deg, const std::function<void(std::int64_t, std::span<float>)>& leaf,
                             std::size_t width) {
  const batch_split cut = split_batch(B, deg);
  std::vector<std::vector<float>> node_sums(cut.nodes.size(), std::vector<float>(width));
  std::set<std::size_t> taken;
  for (int r = 0; r < deg; ++r) {
    EXPECT_LT(cut.first(r, deg), cut.first(r + 1, deg)) << "worker " << r << " of " << deg << " gets nothing";
    EXPECT_LE(cut.first(r + 1, deg) - cut.first(r, deg), cut.most_per_worker(deg));
    for (std::size_t k = cut.first(r, deg); k < cut.first(r + 1, deg); ++k) {
      EXPECT_TRUE(taken.insert(k).second);
      tree_sum(cut.nodes[k].first, cut.nodes[k].second, leaf, node_sums[k]);
    }
  }
  EXPECT_EQ(taken.size(), cut.nodes.size());
  std::vector<float> joined(width);
  tree_sum_from_cut(
      B, cut.depth,
      [&](std::size_t k, std::span<float> out) { std::copy(node_sums[k].begin(), node_sums[k].end(), out.begin()); },
      joined);
  return joined;
}

TEST(TreeSum, AnyDegreeGivesTheOneWorkerSumBitForBit) {
  auto leaf = [](std::int64_t i, std::span<float> out) {
    for (std::size_t k = 0; k < out.size(); ++k)
      out[k] =
          dit::counter_normal(7, static_cast<std::uint64_t>(i) * 64 + k) * std::pow(10.0f, static_cast<float>(k % 7));
  };
  for (std::int64_t B : {24, 7, 64, 1}) {
    std::vector<float> whole(64);
    tree_sum(0, B, leaf, whole);
    for (int deg = 1; deg <= std::min<std::int64_t>(B, 9); ++deg)
      EXPECT_TRUE(same_bits(whole, split_sum(B, deg, leaf, 64))) << "batch " << B << ", degree " << deg;
    // Every cut, not only the ones split_batch picks.
    for (int depth = 0; depth <= 7; ++depth) {
      const auto cut = tree_cut(B, depth);
      std::vector<float> joined(64);
      tree_sum_from_cut(
          B, depth, [&](std::size_t k, std::span<float> out) { tree_sum(cut[k].first, cut[k].second, leaf, out); },
          joined);
      EXPECT_TRUE(same_bits(whole, joined)) << "batch " << B << ", cut at depth " << depth;
    }
  }
  // Shares stay within about 1.5x: 24 samples over 3 workers is a cut of 8 nodes of 3, 3 + 3 + 2.
  const batch_split three = split_batch(24, 3);
  EXPECT_EQ(three.nodes.size(), 8u);
  EXPECT_EQ(three.most_per_worker(3), 3u);
  // The order matters: a running sum gives other bits for these magnitudes.
  std::vector<float> whole(64), seq(64, 0.0f), one(64);
  tree_sum(0, 24, leaf, whole);
  for (std::int64_t i = 0; i < 24; ++i) {
    leaf(i, one);
    for (int k = 0; k < 64; ++k) seq[k] += one[k];
  }
  EXPECT_FALSE(same_bits(whole, seq));
  EXPECT_TRUE(tree_splits(24, 5));
  EXPECT_FALSE(tree_splits(2, 4));
  EXPECT_FALSE(tree_splits(4, 0));
}

TEST(Membership, PlansParseAndTheLatestChangeThatAppliesWins) {
  auto plan = parse_membership("# the pool: 0-3\n\n3: 2 0\n0,1,3\n 10 : 0  # alone\n", 4, 8);
  ASSERT_TRUE(plan) << plan.err().what;
  ASSERT_EQ(plan->size(), 3u);
  EXPECT_EQ((*plan)[0].members, (std::vector<std::int32_t>{0, 2}));
  using v = std::vector<std::int32_t>;
  EXPECT_EQ(members_at(*plan, 1, 4), (v{0, 1, 3}));  // the line without a step applies from the start
  EXPECT_EQ(members_at(*plan, 9, 4), (v{0, 1, 3}));  // ... and, being later, over "3:"
  EXPECT_EQ(members_at(*plan, 10, 4), (v{0}));
  EXPECT_EQ(members_at({}, 5, 3), (v{0, 1, 2}));
  auto two = parse_membership("5: 0 1\n9: 0 1 2\n", 3, 8);
  ASSERT_TRUE(two);
  EXPECT_EQ(members_at(*two, 4, 3), (v{0, 1, 2}));
  EXPECT_EQ(members_at(*two, 5, 3), (v{0, 1}));
  EXPECT_EQ(members_at(*two, 9, 3), (v{0, 1, 2}));

  const std::pair<const char*, const char*> bad[] = {
      {"0 1\n0 4\n", "line 2: rank 4 is not in the pool (ranks 0 to 3)"},
      {"0 1 1", "line 1: rank 1 is named twice"},
      {"1 2", "line 1: rank 0 must take part"},
      {"0 x", "line 1: 'x' is not a rank"},
      {"0 -1", "line 1: rank -1 is not in the pool"},
      {"0: 0 1", "line 1: '0' is not a step (a number from 1)"},
      {"a b: 0", "is not a step"},
      {"4:", "line 1: no ranks"},
      {"0 1 2 3", "4 workers cannot split a global batch of 3"},
      {"0 99999999999999999999", "is not a rank"},
  };
  for (const auto& [text, why] : bad) {
    auto r = parse_membership(text, 4, 3);
    ASSERT_FALSE(r) << text;
    EXPECT_NE(r.err().what.find(why), std::string::npos) << text << ": " << r.err().what;
  }
}

TEST(TrainLog, RowsRoundTripAResumeDropsLaterStepsAndTheCurveDrawsThem) {
  const fs::path dir = fs::temp_directory_path() / ("gfdit-train-log-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path file = dir / "train_log.csv";
  auto none = read_log(file);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(append_log(file, {i, 2.0 / i, 0.5, 1e-3, 0.25, 32.0, i < 3 ? 4 : 2}));
  auto rows = read_log(file);
  ASSERT_TRUE(rows) << rows.err().what;
  ASSERT_EQ(rows->size(), 5u);
  EXPECT_EQ((*rows)[2].step, 3);
  EXPECT_EQ((*rows)[2].loss, 2.0 / 3);  // every bit of the double
  EXPECT_EQ((*rows)[2].workers, 2);
  ASSERT_TRUE(keep_log_until(file, 3));
  rows = read_log(file);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ(rows->back().step, 3);

  const std::string svg = loss_svg(*rows, "loss: <run> & co");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("loss: &lt;run&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<'), std::count(svg.begin(), svg.end(), '>'));
  const auto avg = svg.find("class=\"average\"");
  ASSERT_NE(avg, std::string::npos);
  const auto points = svg.substr(svg.find("points=\"", avg));
  EXPECT_EQ(std::count(points.begin(), points.begin() + static_cast<std::ptrdiff_t>(points.find("\"/>")), ','), 3);
  EXPECT_NE(loss_svg({}, "t").find("no steps yet"), std::string::npos);

  std::ofstream(file, std::ios::app) << "4,0.5,oops\n";
  auto bad = read_log(file);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.err().what.find("train_log.csv:5: not a row"), std::string::npos) << bad.err().what;
  fs::remove_all(dir);
}

TEST(FlowDraws, AreAFunctionOfTheGlobalSampleAlone) {
  flow_dataset d;
  d.count = 1000, d.sample_values = 1;
  d.tokens.assign(1000, 0.0f);
  for (int i = 0; i < 1000; ++i) d.labels.push_back(i % 10);
  const auto c = tiny_fashion_config();
  sample_order a(3, d.count), b(3, d.count);
  std::set<std::int64_t> epoch0;
  int dropped = 0;
  for (std::int64_t g = 0; g < 1000; ++g) {
    const auto x = draw_sample(a, d, c, 3, 0.1f, g);
    epoch0.insert(x.index);
    dropped += x.label == 10;
    EXPECT_GT(x.sigma, 0.0f);
    EXPECT_LT(x.sigma, 1.0f);
  }
  EXPECT_EQ(epoch0.size(), 1000u) << "an epoch visits every picture once";
  EXPECT_NEAR(dropped, 100, 40);
  // Drawn out of order, by another order object (another worker), the same draw.
  for (std::int64_t g : {1999, 5, 1500, 17}) {
    const auto x = draw_sample(a, d, c, 3, 0.1f, g), y = draw_sample(b, d, c, 3, 0.1f, g);
    EXPECT_EQ(x.index, y.index);
    EXPECT_EQ(x.label, y.label);
    EXPECT_EQ(x.sigma, y.sigma);
    EXPECT_EQ(x.noise_stream, y.noise_stream);
  }
  EXPECT_NE(draw_sample(a, d, c, 4, 0.1f, 5).noise_stream, draw_sample(a, d, c, 3, 0.1f, 5).noise_stream);
}

struct small_run {
  param_layout layout;
  flow_dataset data;
};

small_run load_small() {
  auto L = param_layout::of(tiny_fashion_config());
  auto d = load_flow_dataset(L->config, std::string(testing::fashion_dir) + "/train-images-idx3-ubyte.gz",
                             std::string(testing::fashion_dir) + "/train-labels-idx1-ubyte.gz", 512);
  EXPECT_TRUE(d) << d.err().what;
  return {*L, std::move(*d)};
}

train_options quick_options() {
  train_options o;
  o.batch = 8, o.steps = 40, o.seed = 11, o.init_seed = 5;
  o.adamw.lr = 2e-3f, o.adamw.warmup = 5;
  return o;
}

TEST(Trainer, StepsAreBitwiseRunToRunAndTheLossFalls) {
  if (!testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST (Debian package dataset-fashion-mnist)";
  auto run = load_small();
  const auto o = quick_options();
  std::vector<float> first;
  std::vector<double> losses;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto p = initial_weights(run.layout, o.init_seed);
    auto t = trainer::create(run.layout, o, run.data, p, adamw_init(p));
    ASSERT_TRUE(t) << t.err().what;
    for (int s = 0; s < 40; ++s) {
      auto r = t->step({});
      ASSERT_TRUE(r) << r.err().what;
      if (attempt == 0) losses.push_back(r->loss);
      EXPECT_TRUE(std::isfinite(r->grad_norm));
    }
    if (attempt == 0)
      first = t->params();
    else
      EXPECT_TRUE(same_bits(first, t->params()));
    EXPECT_FALSE(t->step({})) << "past the schedule's last step";
  }
  const double head = (losses[0] + losses[1] + losses[2]) / 3, tail = (losses[37] + losses[38] + losses[39]) / 3;
  EXPECT_LT(tail, 0.8 * head) << "loss " << head << " -> " << tail;
}

TEST(Trainer, ACancelledStepChangesNothing) {
  if (!testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST (Debian package dataset-fashion-mnist)";
  auto run = load_small();
  const auto o = quick_options();
  auto p = initial_weights(run.layout, o.init_seed);
  auto t = trainer::create(run.layout, o, run.data, p, adamw_init(p));
  ASSERT_TRUE(t) << t.err().what;
  ASSERT_TRUE(t->step({}));
  const auto params = t->params();
  const auto m = t->state().m;
  std::atomic<bool> cancel{true};
  auto r = t->step({}, &cancel);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("step 2 cancelled"), std::string::npos) << r.err().what;
  EXPECT_EQ(t->state().step, 1);
  EXPECT_TRUE(same_bits(params, t->params()));
  EXPECT_TRUE(same_bits(m, t->state().m));
  cancel = false;
  EXPECT_TRUE(t->step({}, &cancel));  // the same step, taken
  EXPECT_EQ(t->state().step, 2);
}

TEST(Trainer, RefusesWeightsOfAnotherSize) {
  if (!testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST";
  auto run = load_small();
  auto o = quick_options();
  auto p = initial_weights(run.layout, 1);
  p.pop_back();
  auto t = trainer::create(run.layout, o, run.data, p, adamw_init(p));
  ASSERT_FALSE(t);
  EXPECT_NE(t.err().what.find("do not match"), std::string::npos) << t.err().what;
}

TEST(Checkpoint, RoundTripsTheStateBitwiseAndServesTheEmaWeights) {
  if (!testing::have_fashion()) GTEST_SKIP() << "no Fashion-MNIST";
  auto run = load_small();
  const auto o = quick_options();
  auto p = initial_weights(run.layout, o.init_seed);
  auto t = trainer::create(run.layout, o, run.data, p, adamw_init(p));
  ASSERT_TRUE(t);
  for (int s = 0; s < 3; ++s) ASSERT_TRUE(t->step({}));
  const fs::path dir = fs::temp_directory_path() / ("gfdit-train-ckpt-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string card = dit::to_json(run.layout.config);
  ASSERT_TRUE(save_checkpoint(dir, card, *t));
  auto back = load_train_state(dir, run.layout);
  ASSERT_TRUE(back) << back.err().what;
  EXPECT_TRUE(same_bits(back->params, t->params()));
  EXPECT_TRUE(same_bits(back->state.m, t->state().m));
  EXPECT_TRUE(same_bits(back->state.v, t->state().v));
  EXPECT_TRUE(same_bits(back->state.ema, t->state().ema));
  EXPECT_EQ(back->state.step, 3);
  EXPECT_EQ(back->options.batch, o.batch);
  EXPECT_EQ(back->options.seed, o.seed);
  EXPECT_EQ(back->options.adamw.lr, o.adamw.lr);
  EXPECT_EQ(back->options.label_drop, o.label_drop);
  EXPECT_EQ(back->data_count, 512);
  // The folder is a model folder: its weights are the EMA, rounded to bf16.
  auto c = dit::read_model_card(dir);
  ASSERT_TRUE(c) << c.err().what;
  auto m = dit::load_model(*c);
  ASSERT_TRUE(m) << m.err().what;
  const auto& ema = t->state().ema;
  const auto& served = m->tensors().at("final.ada.weight");
  const std::int64_t off = run.layout.at("final.ada.weight");
  for (std::size_t i = 0; i < served.size(); ++i)
    ASSERT_EQ(served[i], dit::to_bf16(ema[static_cast<std::size_t>(off) + i])) << i;
  // Another model's state is refused, naming the file.
  auto other = tiny_fashion_config();
  other.hidden = 64;
  auto L2 = param_layout::of(other);
  auto bad = load_train_state(dir, *L2);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.err().what.find("train_state.safetensors"), std::string::npos) << bad.err().what;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gfdit::train
