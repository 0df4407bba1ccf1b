// The SD VAE decoder on the GPU (kernels/dit/vae_gpu.hpp): the tiny fixture against its PyTorch
// reference and the CPU decoder (bf16 GEMM inputs: within 1e-2 rel RMS), the same bits on every
// run and for any batch, the size checks; an SD-size decoder when GFDIT_SD_VAE_DIR names one.
// Skipped without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>

#include "kernels/dit/gpu_forward.hpp"  // gpu_available
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/safetensors.hpp"
#include "kernels/dit/vae.hpp"
#include "kernels/dit/vae_gpu.hpp"
#include "tests/kernels/dit/rel_rms.hpp"

namespace fs = std::filesystem;
using namespace gfdit;
using namespace gfdit::dit;
using gfdit::dit::testing::rel_rms;

namespace {

const fs::path fixture = fs::path(GFDIT_SOURCE_DIR) / "tests/kernels/dit/fixtures/tiny-vae";

struct reference {
  std::vector<float> latent, image;
  int h = 0, w = 0;
};

// DIR/reference_io.safetensors: `latent` [1, C, h, w] and `image` [1, 3, 8h, 8w] (PyTorch fp32).
reference read_reference(const fs::path& dir) {
  auto io = read_safetensors(dir / "reference_io.safetensors");
  EXPECT_TRUE(io.ok()) << (io.ok() ? "" : io.err().what);
  if (!io) return {};
  const auto& latent = io->tensors.at("latent");
  return {latent.values, io->tensors.at("image").values, static_cast<int>(latent.shape[2]),
          static_cast<int>(latent.shape[3])};
}

std::vector<float> seeded_latent(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = counter_normal(seed, i);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(VaeGpu, TinyFixtureMatchesPyTorchAndTheCpuDecoder) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = vae_decoder::load(fixture);
  ASSERT_TRUE(cpu.ok()) << cpu.err().what;
  auto gpu = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(gpu.ok()) << gpu.err().what;
  const reference ref = read_reference(fixture);
  ASSERT_EQ(ref.latent.size(), 4u * 8 * 8);
  auto image = (*gpu)->decode(ref.latent, 1, ref.h, ref.w);
  ASSERT_TRUE(image.ok()) << image.err().what;
  ASSERT_EQ(image->size(), ref.image.size());
  auto on_cpu = cpu->decode(ref.latent, ref.h, ref.w);
  ASSERT_TRUE(on_cpu.ok());
  const double vs_torch = rel_rms(*image, ref.image), vs_cpu = rel_rms(*image, *on_cpu);
  std::printf("tiny-vae on the GPU: relative rms error %.3g against PyTorch fp32, %.3g against the CPU decoder\n",
              vs_torch, vs_cpu);
  EXPECT_LE(vs_torch, 1e-2);  // bf16 GEMM inputs; emulated in PyTorch: 6.3e-3
  EXPECT_LE(vs_cpu, 1e-2);
}

TEST(VaeGpu, OddLatentSizesMatchTheCpuDecoder) {
  // Token and pixel counts that are not multiples of 8 (the GEMMs' zero padding), and one row.
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = vae_decoder::load(fixture);
  ASSERT_TRUE(cpu.ok()) << cpu.err().what;
  auto gpu = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(gpu.ok()) << gpu.err().what;
  for (auto [h, w] : {std::pair{3, 5}, std::pair{1, 7}, std::pair{9, 2}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const auto latent = seeded_latent(4u * h * w, 11);
    auto g = (*gpu)->decode(latent, 1, h, w);
    auto c = cpu->decode(latent, h, w);
    ASSERT_TRUE(g.ok()) << g.err().what;
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(g->size(), 3u * 8 * h * 8 * w);
    const double rel = rel_rms(*g, *c);
    std::printf("tiny-vae %dx%d: relative rms error %.3g against the CPU decoder\n", h, w, rel);
    EXPECT_LE(rel, 1e-2);
  }
}

TEST(VaeGpu, DecodingTwiceGivesTheSameBits) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = vae_decoder::load(fixture);
  ASSERT_TRUE(cpu.ok()) << cpu.err().what;
  auto gpu = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(gpu.ok()) << gpu.err().what;
  const reference ref = read_reference(fixture);
  auto a = (*gpu)->decode(ref.latent, 1, ref.h, ref.w);
  auto b = (*gpu)->decode(ref.latent, 1, ref.h, ref.w);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(same_bits(*a, *b));
  // A second upload of the same weights decodes to the same bits too.
  auto again = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(again.ok()) << again.err().what;
  auto c = (*again)->decode(ref.latent, 1, ref.h, ref.w);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(same_bits(*a, *c));
}

TEST(VaeGpu, ABatchOfTwoEqualsTheTwoSingleDecodes) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = vae_decoder::load(fixture);
  ASSERT_TRUE(cpu.ok()) << cpu.err().what;
  auto gpu = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(gpu.ok()) << gpu.err().what;
  const reference ref = read_reference(fixture);
  const auto other = seeded_latent(ref.latent.size(), 3);
  std::vector<float> both = ref.latent;
  both.insert(both.end(), other.begin(), other.end());
  auto pair = (*gpu)->decode(both, 2, ref.h, ref.w);
  auto first = (*gpu)->decode(ref.latent, 1, ref.h, ref.w);
  auto second = (*gpu)->decode(other, 1, ref.h, ref.w);
  ASSERT_TRUE(pair.ok()) << pair.err().what;
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_EQ(pair->size(), 2 * first->size());
  const std::vector<float> a(pair->begin(), pair->begin() + static_cast<std::ptrdiff_t>(first->size()));
  const std::vector<float> b(pair->begin() + static_cast<std::ptrdiff_t>(first->size()), pair->end());
  EXPECT_TRUE(same_bits(a, *first));
  EXPECT_TRUE(same_bits(b, *second));
  EXPECT_FALSE(same_bits(a, b));
}

TEST(VaeGpu, WrongLatentsAreErrorsNamingWhatIsWrong) {
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = vae_decoder::load(fixture);
  ASSERT_TRUE(cpu.ok()) << cpu.err().what;
  auto gpu = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(gpu.ok()) << gpu.err().what;
  const auto expect_error = [&](std::span<const float> latents, int batch, int h, int w, const std::string& text) {
    auto r = (*gpu)->decode(latents, batch, h, w);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.err().code, errc::invalid_argument);
    EXPECT_NE(r.err().what.find(text), std::string::npos) << r.err().what;
  };
  const auto one = seeded_latent(4 * 8 * 8, 5);
  expect_error(one, 2, 8, 8, "latents have 256 values, expected 512 (2 x 4 x 8 x 8)");
  expect_error(std::span<const float>(one).first(255), 1, 8, 8, "latents have 255 values, expected 256");
  expect_error(one, 1, 8, 9, "expected 288");
  expect_error(one, 1, 0, 8, "latent size 0x8 (each side 1..512)");
  expect_error(one, 1, 8, 513, "latent size 8x513");
  expect_error(one, 0, 8, 8, "batch 0");
  auto nan = one;
  nan[70] = std::numeric_limits<float>::quiet_NaN();
  expect_error(nan, 1, 8, 8, "latent 0, element 70 is not finite");
  // After the errors the decoder still works.
  auto ok = (*gpu)->decode(one, 1, 8, 8);
  EXPECT_TRUE(ok.ok()) << ok.err().what;
}

TEST(VaeGpu, SdSizeDecoderMatchesItsReference) {
  // GFDIT_SD_VAE_DIR: an SD-size decoder folder (config.json, diffusion_pytorch_model.safetensors)
  // with reference_io.safetensors (`latent`, `image`), e.g. from
  // `models/reference/make_vae_fixture.py --sd DIR` (random weights, a 4x32x32 latent).
  const char* dir = std::getenv("GFDIT_SD_VAE_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "GFDIT_SD_VAE_DIR is not set";
  if (!gpu_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = vae_decoder::load(dir);
  ASSERT_TRUE(cpu.ok()) << cpu.err().what;
  auto gpu = gpu_vae_decoder::upload(*cpu);
  ASSERT_TRUE(gpu.ok()) << gpu.err().what;
  const reference ref = read_reference(dir);
  ASSERT_FALSE(ref.latent.empty());
  auto image = (*gpu)->decode(ref.latent, 1, ref.h, ref.w);
  ASSERT_TRUE(image.ok()) << image.err().what;
  ASSERT_EQ(image->size(), ref.image.size());
  const double rel = rel_rms(*image, ref.image);
  std::printf("SD-size VAE (%s) on the GPU, %dx%d latent: relative rms error %.3g against its reference\n", dir, ref.h,
              ref.w, rel);
  EXPECT_LE(rel, 1e-2);  // emulated in PyTorch (random SD-size weights): 7.1e-3
  auto again = (*gpu)->decode(ref.latent, 1, ref.h, ref.w);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(same_bits(*image, *again));
  for (int side : {ref.h, 64}) {
    auto ms = (*gpu)->time_decode(1, side, side, 5);
    ASSERT_TRUE(ms.ok()) << ms.err().what;
    std::printf("SD-size VAE decode %dx%d -> %dx%d: %.2f ms (median of 5)\n", side, side, 8 * side, 8 * side, *ms);
  }
}
