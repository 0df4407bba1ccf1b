// The single-GPU DiT forward against the CPU forward (bf16 tolerance) and against itself (bits).
// Skipped without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/dit/forward.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/sampler.hpp"
#include "tests/kernels/dit/spawn.hpp"

namespace gfdit::dit {
namespace {

struct inputs {
  std::vector<float> image, ts, text;
  std::vector<int> labels;
  forward_input view(int batch) { return {batch, image, ts, labels, text}; }
};

inputs make_inputs(const model_config& c, int batch) {
  inputs in;
  request r;
  r.seed = 17;
  for (int b = 0; b < batch; ++b) {
    r.seed = 17 + b;
    auto x = initial_latent(c, r, 1, 0);
    in.image.insert(in.image.end(), x.begin(), x.end());
    in.ts.push_back(700.0f - 300.0f * b);
    in.labels.push_back(b == 0 ? 2 : c.num_classes);
    if (c.cond == conditioning::text) {
      auto t = seeded_text(c, 3 + b);
      in.text.insert(in.text.end(), t.begin(), t.end());
    }
  }
  if (c.cond == conditioning::text) in.labels.clear();
  return in;
}

// ||got - want|| / ||want|| over all elements.
double relative_rms(const std::vector<float>& want, const std::vector<float>& got) {
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err += (double(want[i]) - got[i]) * (double(want[i]) - got[i]);
    ref += double(want[i]) * want[i];
  }
  return std::sqrt(err / ref);
}

TEST(DitGpu, CpuAndGpuForwardAgreeWithinBf16Tolerance) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  for (const char* name : {"tiny-dit", "tiny-mmdit"}) {
    auto m = model::generate(*stock_config(name), 5);
    ASSERT_TRUE(m.ok());
    auto g = gpu_model::upload(*m);
    ASSERT_TRUE(g.ok()) << g.err().what;
    auto in = make_inputs(m->config(), 2);
    auto cpu = forward_cpu(*m, in.view(2), sp_group{});
    auto gpu = (*g)->forward(in.view(2));
    ASSERT_TRUE(cpu.ok()) << cpu.err().what;
    ASSERT_TRUE(gpu.ok()) << gpu.err().what;
    ASSERT_EQ(cpu->size(), gpu->size());
    double worst = 0;
    for (std::size_t i = 0; i < cpu->size(); ++i) worst = std::max(worst, std::abs(double((*cpu)[i]) - (*gpu)[i]));
    const double rel = relative_rms(*cpu, *gpu);
    std::printf("%s: relative RMS error %.3g, worst abs %.3g\n", name, rel, worst);
    EXPECT_LT(rel, 2e-2) << name;  // a few bf16 roundings (2^-8) compounded over two blocks
  }
}

TEST(DitGpu, GpuForwardRepeatsBitForBit) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto m = model::generate(*stock_config("tiny-mmdit"), 5);
  ASSERT_TRUE(m.ok());
  auto g = gpu_model::upload(*m);
  ASSERT_TRUE(g.ok()) << g.err().what;
  auto in = make_inputs(m->config(), 2);
  auto a = (*g)->forward(in.view(2));
  auto b = (*g)->forward(in.view(2));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(0, std::memcmp(a->data(), b->data(), a->size() * sizeof(float)));
}

TEST(DitGpu, TimingPathsRunForATinyConfig) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto g = gpu_model::generate(*stock_config("tiny-dit"), 1);
  ASSERT_TRUE(g.ok()) << g.err().what;
  auto t = (*g)->time_block(2, 64, 3);
  ASSERT_TRUE(t.ok()) << t.err().what;
  EXPECT_GT(t->graph_ms, 0.0);
  auto s = (*g)->time_step(1, 64, 3);
  ASSERT_TRUE(s.ok()) << s.err().what;
}

}  // namespace
}  // namespace gfdit::dit

namespace gfdit::dit {
namespace {

// Sharding changes the row count of every GEMM; a sample's bits must not notice. Running a
// sample alone (M = n rows) and beside another (M = 2n) pins exactly that.
TEST(DitGpu, ASamplesBitsDoNotDependOnTheRowCountItRunsIn) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  for (const char* name : {"tiny-dit", "tiny-mmdit"}) {
    auto m = model::generate(*stock_config(name), 5);
    ASSERT_TRUE(m.ok());
    auto g = gpu_model::upload(*m);
    ASSERT_TRUE(g.ok()) << g.err().what;
    auto two = make_inputs(m->config(), 2);
    auto one = make_inputs(m->config(), 1);
    auto a = (*g)->forward(two.view(2));
    auto b = (*g)->forward(one.view(1));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(0, std::memcmp(a->data(), b->data(), b->size() * sizeof(float))) << name;
  }
}

}  // namespace
}  // namespace gfdit::dit

namespace gfdit::dit {
namespace {

// The sampler with the GPU forward as its model call: close to the CPU sampler (bf16 roundings
// over a few steps), and bit for bit the same when run again. CFG on, both samplers.
TEST(DitGpu, GpuDenoiseAgreesWithTheCpuSamplerAndRepeatsBitForBit) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  for (const char* name : {"tiny-dit", "tiny-mmdit"})
    for (sampler_kind sk : {sampler_kind::flow_euler, sampler_kind::ddim}) {
      auto m = model::generate(*stock_config(name), 7);
      ASSERT_TRUE(m.ok());
      auto g = gpu_model::upload(*m);
      ASSERT_TRUE(g.ok()) << g.err().what;
      request r;
      r.seed = 42, r.steps = 3, r.guidance = 4.0f, r.sampler = sk, r.class_label = 3;
      r.shift = sk == sampler_kind::flow_euler ? 3.0f : 1.0f;
      if (m->config().cond == conditioning::text) r.text = seeded_text(m->config(), 5);
      const auto x0 = initial_latent(m->config(), r, 1, 0);
      auto cpu = x0, gpu = x0, again = x0;
      ASSERT_TRUE(denoise(*m, r, 0, r.steps, sp_group{}, cpu).ok());
      auto d = (*g)->denoise(r, 0, r.steps, sp_group{}, gpu);
      ASSERT_TRUE(d.ok()) << d.err().what;
      ASSERT_TRUE((*g)->denoise(r, 0, r.steps, sp_group{}, again).ok());
      EXPECT_EQ(std::memcmp(gpu.data(), again.data(), gpu.size() * sizeof(float)), 0) << name;
      const double rel = relative_rms(cpu, gpu);
      std::printf("%s %s: GPU vs CPU sampler relative RMS error %.3g\n", name,
                  sk == sampler_kind::ddim ? "ddim" : "flow", rel);
      EXPECT_GT(relative_rms(cpu, x0), 0.0) << name << ": the sampler must change the latent";
      EXPECT_LT(rel, 3e-2) << name;
    }
}

// Degree 1 vs 2 vs 4 on one GPU: row-wise work per token shard (each GEMM with the shard's row
// count), attention per head group, exactly as the Ulysses ranks split it.
TEST(DitGpu, UlyssesShardedComputeIsBitwiseEqualAtDegrees124) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  for (const char* name : {"tiny-dit", "tiny-mmdit"}) {
    auto m = model::generate(*stock_config(name), 5);
    ASSERT_TRUE(m.ok());
    auto g = gpu_model::upload(*m);
    ASSERT_TRUE(g.ok()) << g.err().what;
    auto in = make_inputs(m->config(), 2);
    auto d1 = (*g)->forward(in.view(2), 1);
    ASSERT_TRUE(d1.ok()) << d1.err().what;
    for (int d : {2, 4}) {
      auto dd = (*g)->forward(in.view(2), d);
      ASSERT_TRUE(dd.ok()) << dd.err().what;
      std::size_t diff = 0;
      for (std::size_t i = 0; i < d1->size(); ++i) diff += std::memcmp(&(*d1)[i], &(*dd)[i], 4) != 0;
      EXPECT_EQ(diff, 0u) << name << " degree " << d << ": " << diff << " of " << d1->size() << " elements differ";
    }
  }
}

}  // namespace
}  // namespace gfdit::dit

namespace gfdit::dit {
namespace {

// Real Ulysses: one process per GPU (a cuda-ipc World), the GPU forward at degree 2 (and 4 with
// 4 GPUs) with both all-to-alls per block for real; rank 0 gathers the shards and compares them
// bit for bit with its degree-1 forward (gfdit_dit_worker gpu-ulysses). Degree 3 must be a
// clear error (4 heads).
TEST(DitGpu, RealUlyssesAcrossProcessesIsBitwiseEqualToDegree1) {
  const int n = gpu_count();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs, found " << n;
  const int ranks = n >= 4 ? 4 : 2;
  // "wave-split": 2 samples x 4 heads per rank at degree 2 over 19 query tiles of 128 rows (7 text
  // + 48x48 image tokens) are 152 attention blocks, a partial wave on a 132-SM H100/H200: the
  // direct exchange then runs its partial-wave pairs first, with pushes beside them.
  auto wide = stock_config("tiny-mmdit");
  ASSERT_TRUE(wide.ok());
  wide->name = "wave-split";
  wide->hidden = 1024;
  wide->heads = 8;
  wide->frames = 1;
  wide->height = wide->width = 96;
  const std::string wide_json = to_json(*wide);
  for (const std::string& name : {std::string("tiny-dit"), std::string("tiny-mmdit"), wide_json}) {
    auto st = testing::run_workers("gpu-ulysses", ranks, {name}, std::chrono::seconds(180));
    for (std::size_t r = 0; r < st.size(); ++r)
      EXPECT_TRUE(st[r].exited && st[r].code == 0)
          << name << " rank " << r << ": exit code " << st[r].code << ", signal " << st[r].signal;
  }
}

// The sampler on GPUs across processes (gfdit_dit_worker gpu-invariance): the final latent's bits
// equal degree 1's at degree 2 (either member order), when the degree changes between steps
// (1 -> 2 -> 1), under CFG-parallel (the conditional and unconditional passes on different GPUs,
// outputs exchanged through the World), and CFG-parallel -> degree 2 -> CFG-parallel; with 4
// GPUs, the CPU test's whole list (degree 4, CFG-parallel x Ulysses 2, ...).
TEST(DitGpu, GpuSamplerFinalLatentIsBitwiseInvariantAcrossLayouts) {
  const int n = gpu_count();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs, found " << n;
  const int ranks = n >= 4 ? 4 : 2;
  for (const auto& args : std::vector<std::vector<std::string>>{{"tiny-dit", "flow"}, {"tiny-mmdit", "ddim"}}) {
    auto st = testing::run_workers("gpu-invariance", ranks, args, std::chrono::seconds(240));
    for (std::size_t r = 0; r < st.size(); ++r)
      EXPECT_TRUE(st[r].exited && st[r].code == 0)
          << args[0] << " rank " << r << ": exit code " << st[r].code << ", signal " << st[r].signal;
  }
}

}  // namespace
}  // namespace gfdit::dit
