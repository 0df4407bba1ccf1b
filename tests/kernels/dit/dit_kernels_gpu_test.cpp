// The DiT's fused row kernel on its own: residual_ln_mod against an fp64 host reference (bf16
// tolerance), its norm against ln_mod of the same x (bits), and one row alone against the same
// row inside a launch (bits). Skipped without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/dit/gpu_kernels.hpp"

namespace gfdit::dit::gpu {
namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

template <class T>
struct dev {
  T* p = nullptr;
  explicit dev(std::size_t n) { EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess); }
  ~dev() { cudaFree(p); }
  void put(const std::vector<T>& v) {
    EXPECT_EQ(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> get(std::size_t n) const {
    std::vector<T> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
};

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Row widths for every launch shape: 16-byte and scalar accesses, 256 and 1024 threads, 4 and
// 16 accesses per thread, and widths that end mid-way through a thread's share.
TEST(DitKernelsGpu, ResidualLnModMatchesTheReferenceAndLnModBitForBit) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int H : {3072, 6000, 18, 1030, 20000}) {
    const int rows = 5, rps = 2, samples = 3, stride = 6 * H;
    std::vector<float> x(std::size_t(rows) * H);
    std::vector<bf16> y(x.size()), mod(std::size_t(samples) * stride);
    for (auto& v : x) v = 3.f * nd(rng) + 0.5f;
    for (auto& v : y) v = __float2bfloat16(nd(rng));
    for (auto& v : mod) v = __float2bfloat16(0.3f * nd(rng));
    dev<float> x1(x.size()), x2(x.size()), x3(H);
    dev<bf16> dy(y.size()), dm(mod.size()), o1(x.size()), o2(x.size()), o3(H);
    x2.put(x), dy.put(y), dm.put(mod);
    residual_ln_mod(x2.p, dy.p, dm.p + 2 * H, stride, rows, H, rps, dm.p, stride, 3 * H, 4 * H, o2.p, nullptr);
    // ln_mod of the updated x: the same norm, bit for bit.
    ASSERT_EQ(cudaMemcpy(x1.p, x2.p, x.size() * sizeof(float), cudaMemcpyDeviceToDevice), cudaSuccess);
    ln_mod(x1.p, rows, H, rps, dm.p, stride, 3 * H, 4 * H, o1.p, nullptr);
    // Row 3 alone (sample 1) in a launch of one row.
    const int r = 3;
    EXPECT_EQ(cudaMemcpy(x3.p, x.data() + std::size_t(r) * H, H * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    const bf16* m3 = dm.p + std::size_t(r / rps) * stride;
    residual_ln_mod(x3.p, dy.p + std::size_t(r) * H, m3 + 2 * H, stride, 1, H, 1, m3, stride, 3 * H, 4 * H, o3.p,
                    nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "H " << H;
    const auto xb = x2.get(x.size()), xc = x3.get(H);
    const auto oa = o1.get(x.size()), ob = o2.get(x.size()), oc = o3.get(H);
    EXPECT_TRUE(same_bits(oa, ob)) << "H " << H;
    EXPECT_TRUE(same_bits(std::vector<float>(xb.begin() + std::size_t(r) * H, xb.begin() + std::size_t(r + 1) * H), xc))
        << "H " << H;
    EXPECT_TRUE(same_bits(std::vector<bf16>(ob.begin() + std::size_t(r) * H, ob.begin() + std::size_t(r + 1) * H), oc))
        << "H " << H;
    // fp64 reference of both outputs.
    double err = 0, ref = 0, xerr = 0;
    for (int row = 0; row < rows; ++row) {
      const bf16* md = mod.data() + std::size_t(row / rps) * stride;
      std::vector<double> v(H);
      double mean = 0, var = 0;
      for (int i = 0; i < H; ++i) {
        const std::size_t k = std::size_t(row) * H + i;
        v[i] = double(x[k]) + double(__bfloat162float(md[2 * H + i])) * double(__bfloat162float(y[k]));
        xerr = std::max(xerr, std::abs(v[i] - xb[k]) / (1 + std::abs(v[i])));
        mean += v[i];
      }
      mean /= H;
      for (int i = 0; i < H; ++i) var += (v[i] - mean) * (v[i] - mean);
      const double rstd = 1 / std::sqrt(var / H + 1e-6);
      for (int i = 0; i < H; ++i) {
        const double want = (v[i] - mean) * rstd * (1 + double(__bfloat162float(md[4 * H + i]))) +
                            double(__bfloat162float(md[3 * H + i]));
        const double d = want - double(__bfloat162float(ob[std::size_t(row) * H + i]));
        err += d * d;
        ref += want * want;
      }
    }
    EXPECT_LT(xerr, 1e-6) << "H " << H;
    EXPECT_LT(std::sqrt(err / ref), 1e-2) << "H " << H;
  }
}

}  // namespace
}  // namespace gfdit::dit::gpu
