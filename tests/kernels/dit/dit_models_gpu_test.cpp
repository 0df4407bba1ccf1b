// Real models on the GPU: the shipped fashion-dit's GPU path against its CPU path and itself, a
// batch of requests against the requests alone, and diffusers DiT weights against the PyTorch
// reference: the tiny fixture always, a published size (e.g. DiT-XL/2, written on the device by
// models/reference/make_dit_pipeline.py) when GFDIT_DIT_PIPELINE_DIR names its folder.
// Skipped without a CUDA device.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "kernels/dit/diffusers_dit.hpp"
#include "kernels/dit/generate.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/dit/safetensors.hpp"
#include "kernels/dit/sampler.hpp"
#include "tests/kernels/dit/diffusers_io.hpp"
#include "tests/kernels/dit/rel_rms.hpp"

namespace fs = std::filesystem;
using namespace gfdit;
using namespace gfdit::dit;
using gfdit::dit::testing::eps_of;
using gfdit::dit::testing::first_channels;
using gfdit::dit::testing::rel_rms;

namespace {

const fs::path source_dir = GFDIT_SOURCE_DIR;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(DitModelsGpu, FashionDitOnTheGpuDrawsWhatTheCpuDrawsAndRepeatsItsBits) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto card = read_model_card(source_dir / "models" / "fashion-dit");
  ASSERT_TRUE(card.ok()) << card.err().what;
  auto m = load_model(*card);
  ASSERT_TRUE(m.ok()) << m.err().what;
  double worst = 0;
  for (int cls : {0, 7, 9}) {
    generate_options o;
    o.class_label = cls;
    o.seed = 11 + cls;
    auto cpu = generate_latent(*m, *card, o);
    o.device = device_kind::gpu;
    auto gpu = generate_latent(*m, *card, o), again = generate_latent(*m, *card, o);
    ASSERT_TRUE(cpu.ok()) << cpu.err().what;
    ASSERT_TRUE(gpu.ok()) << gpu.err().what;
    ASSERT_TRUE(again.ok()) << again.err().what;
    EXPECT_TRUE(same_bits(*gpu, *again)) << "class " << cls;
    const double r = rel_rms(*gpu, *cpu);
    auto pc = decode_pixels(*card, *cpu), pg = decode_pixels(*card, *gpu);
    ASSERT_TRUE(pc.ok() && pg.ok());
    int maxdiff = 0;
    double mean = 0;
    for (std::size_t i = 0; i < pc->pixels.size(); ++i) {
      const int d = std::abs(int(pc->pixels[i]) - int(pg->pixels[i]));
      maxdiff = std::max(maxdiff, d);
      mean += d;
    }
    std::printf("class %d: GPU vs CPU final latent rel RMS %.3g; pixels max |diff| %d, mean %.2f (of 255)\n", cls, r,
                maxdiff, mean / pc->pixels.size());
    worst = std::max(worst, r);
  }
  // bf16 GEMMs summed in another order, over 25 steps of a guided sampler: the pictures agree,
  // not their bits (the bits are the same on the same kind of device, tested above).
  EXPECT_LT(worst, 5e-2);
}

TEST(DitModelsGpu, ABatchOfRequestsGivesEachRequestItsOwnBits) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto card = read_model_card(source_dir / "models" / "fashion-dit");
  ASSERT_TRUE(card.ok()) << card.err().what;
  auto m = load_model(*card);
  ASSERT_TRUE(m.ok()) << m.err().what;
  auto g = gpu_model::upload(*m);
  ASSERT_TRUE(g.ok()) << g.err().what;
  const model_config& c = m->config();
  std::vector<request> rs;
  for (int k = 0; k < 3; ++k) {
    generate_options o;
    o.class_label = 2 * k + 1;
    o.seed = 100 + k;
    o.steps = 6;
    o.guidance = k == 1 ? 1.0f : 4.0f;  // one request without CFG among guided ones
    rs.push_back(make_request(*card, o));
  }
  std::vector<std::vector<float>> batch;
  for (const auto& r : rs) batch.push_back(initial_latent(c, r, 1, 0));
  auto fwd = [&](const forward_input& in, const sp_group&) { return (*g)->forward(in, 1); };
  ASSERT_TRUE(denoise_batch(fwd, c, rs, 0, 6, batch).ok());
  for (std::size_t k = 0; k < rs.size(); ++k) {
    auto alone = initial_latent(c, rs[k], 1, 0);
    ASSERT_TRUE((*g)->denoise(rs[k], 0, 6, sp_group{}, alone).ok());
    EXPECT_TRUE(same_bits(batch[k], alone)) << "request " << k;
  }
}

// GPU forward on a diffusers folder's reference_io.safetensors against the PyTorch outputs.
void expect_diffusers_parity(const fs::path& transformer, double tolerance) {
  auto m = load_diffusers_dit(transformer);
  ASSERT_TRUE(m.ok()) << m.err().what;
  auto io = read_safetensors(transformer / "reference_io.safetensors");
  ASSERT_TRUE(io.ok()) << io.err().what;
  auto g = gpu_model::upload(*m);
  ASSERT_TRUE(g.ok()) << g.err().what;
  const model_config& c = m->config();
  const auto eps = eps_of(c, *io, [&](const forward_input& in) { return (*g)->forward(in, 1); });
  const auto again = eps_of(c, *io, [&](const forward_input& in) { return (*g)->forward(in, 1); });
  ASSERT_FALSE(eps.empty());
  EXPECT_TRUE(same_bits(eps, again));
  const int C = c.latent_channels;
  const double emulated = rel_rms(eps, first_channels(io->tensors.at("out_gfdit_rounding"), C));
  const double fp32 = rel_rms(eps, first_channels(io->tensors.at("out_fp32"), C));
  std::printf("%s (%d blocks, hidden %d, %lld tokens): GPU vs PyTorch with gfdit's rounding %.3g, vs fp32 %.3g",
              transformer.parent_path().filename().c_str(), c.depth, c.hidden, static_cast<long long>(c.image_tokens()),
              emulated, fp32);
  if (io->tensors.count("out_f64"))
    std::printf(", vs f64 %.3g", rel_rms(eps, first_channels(io->tensors.at("out_f64"), C)));
  std::printf("\n");
  EXPECT_LT(emulated, tolerance);
  EXPECT_LT(fp32, tolerance);
}

TEST(DitModelsGpu, TinyDiffusersDitMatchesPyTorchAndTheCpu) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  const fs::path t = source_dir / "tests/kernels/dit/fixtures/tiny-diffusers-dit/transformer";
  expect_diffusers_parity(t, 1e-2);
  auto m = load_diffusers_dit(t);
  auto io = read_safetensors(t / "reference_io.safetensors");
  ASSERT_TRUE(m.ok() && io.ok());
  auto g = gpu_model::upload(*m);
  ASSERT_TRUE(g.ok()) << g.err().what;
  const auto gpu = eps_of(m->config(), *io, [&](const forward_input& in) { return (*g)->forward(in, 1); });
  const double r = rel_rms(gpu, eps_of(*m, *io));
  std::printf("tiny diffusers DiT: GPU vs CPU forward rel RMS %.3g\n", r);
  EXPECT_LT(r, 1e-2);
}

TEST(DitModelsGpu, PublishedSizeMatchesPyTorch) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  const char* dir = std::getenv("GFDIT_DIT_PIPELINE_DIR");
  if (!dir || !*dir)
    GTEST_SKIP() << "GFDIT_DIT_PIPELINE_DIR not set (models/reference/make_dit_pipeline.py writes one)";
  expect_diffusers_parity(fs::path(dir) / "transformer", 1e-2);
}

}  // namespace
