// The SD VAE decoder on one GPU (vae_gpu.hpp): the kernels, the cuBLASLt GEMMs and the graph,
// in vae.cpp's order. Reductions have a fixed order that depends on the shape only.
#include "kernels/dit/vae_gpu.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "common/gpu_check.hpp"
#include "kernels/dit/block_sum.cuh"
#include "kernels/dit/lt_algorithm.hpp"
#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

namespace {

using bf16 = __nv_bfloat16;

constexpr float norm_eps = 1e-6f;  // every GroupNorm of the decoder, as vae.cpp
constexpr int max_latent_side = 512;
constexpr int max_batch = 1 << 16;
// One conv chunk's bf16 columns plus its fp32 GEMM output (and the attention's score rows):
// rows of pixels are taken in chunks that fit, so a 512x512 image needs ~256 MB of scratch.
constexpr std::size_t scratch_budget = std::size_t{256} << 20;
constexpr std::size_t workspace_bytes = std::size_t{32} << 20;  // cuBLASLt's
constexpr long gn_slice = 8192;                                 // GroupNorm: elements per partial sum
constexpr int gn_max_slices = 1024;

long round_up(long x, long m) { return (x + m - 1) / m * m; }
int grid_for(long total) { return static_cast<int>(std::clamp<long>((total + 255) / 256, 1, 132L * 16)); }

// --- kernels -------------------------------------------------------------------------------

__device__ float block_max(float v, float* sh) {
  for (int m = 16; m; m >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));
  const int warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  float r = -INFINITY;
  for (int w = 0; w < warps; ++w) r = fmaxf(r, sh[w]);
  __syncthreads();
  return r;
}

// One block per pixel p0 + blockIdx.x of the conv's output map (H x W: the source map sh x sw,
// or twice it with `up`, nearest): its column row col[p][0..kp) holds the source values under
// the kernel in the weight's (in, dy, dx) order, zero outside the map (padding KS / 2) and in
// the padding columns K..kp.
template <int KS>
__global__ void im2col_kernel(const float* __restrict__ x, int cin, int sh, int sw, bool up, long p0, int kp,
                              bf16* __restrict__ col) {
  const int H = up ? 2 * sh : sh, W = up ? 2 * sw : sw;
  const long pix = p0 + blockIdx.x;
  const int py = static_cast<int>(pix / W), px = static_cast<int>(pix % W);
  const int K = cin * KS * KS;
  const long plane = static_cast<long>(sh) * sw;
  bf16* row = col + static_cast<long>(blockIdx.x) * kp;
  for (int k = threadIdx.x; k < kp; k += blockDim.x) {
    float v = 0.0f;
    if (k < K) {
      const int ci = k / (KS * KS), r = k - ci * (KS * KS);
      const int y = py + r / KS - KS / 2, xx = px + r % KS - KS / 2;
      if (y >= 0 && y < H && xx >= 0 && xx < W) {
        const int sy = up ? y >> 1 : y, sx = up ? xx >> 1 : xx;
        v = x[ci * plane + static_cast<long>(sy) * sw + sx];
      }
    }
    row[k] = __float2bfloat16_rn(v);
  }
}

// y[o][p0 + i] = res[o][p0 + i] + (g[o][i] + b[o]) (no res: g + b), i < np, over a map of P
// pixels; g is a GEMM's output with row stride ldg. vae.cpp's order: bias, then the residual.
__global__ void bias_residual_kernel(const float* __restrict__ g, long ldg, const float* __restrict__ b,
                                     const float* __restrict__ res, float* __restrict__ y, int rows, long np, long p0,
                                     long P) {
  const long total = static_cast<long>(rows) * np;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long o = i / np, j = i - o * np;
    const float v = g[o * ldg + j] + b[o];
    const long at = o * P + p0 + j;
    y[at] = res ? res[at] + v : v;
  }
}

// dst[r][c] = bf16(src[r][c] + bias) for c < cols, 0 for cols <= c < ldd (the GEMMs' zero
// padding); bias per column (mode 1), per row (mode 2) or none (0).
__global__ void to_bf16_kernel(const float* __restrict__ src, long lds, const float* __restrict__ bias, int mode,
                               bf16* __restrict__ dst, long ldd, long rows, long cols) {
  const long total = rows * ldd;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long r = i / ldd, c = i - r * ldd;
    float v = 0.0f;
    if (c < cols) {
      v = src[r * lds + c];
      if (mode == 1) v += bias[c];
      if (mode == 2) v += bias[r];
    }
    dst[i] = __float2bfloat16_rn(v);
  }
}

// GroupNorm, pass 1: group g (blockIdx.y; n contiguous elements of the channel-major map) is cut
// into slices of `len` (blockIdx.x); each block writes its slice's mean and sum of squared
// deviations from that mean (two passes, fixed order).
__global__ void gn_stats_kernel(const float* __restrict__ x, long n, long len, float2* __restrict__ part) {
  __shared__ float sh[32];
  const int g = blockIdx.y, s = blockIdx.x;
  const long b = s * len, e = min(n, b + len);
  const float* xg = x + static_cast<long>(g) * n;
  float acc = 0.0f;
  for (long i = b + threadIdx.x; i < e; i += blockDim.x) acc += xg[i];
  const long cnt = e > b ? e - b : 0;
  const float sum = block_sum_fixed(acc, sh);
  const float mean = cnt ? sum / static_cast<float>(cnt) : 0.0f;
  float acc2 = 0.0f;
  for (long i = b + threadIdx.x; i < e; i += blockDim.x) {
    const float d = xg[i] - mean;
    acc2 += d * d;
  }
  const float m2 = block_sum_fixed(acc2, sh);
  if (threadIdx.x == 0) part[static_cast<long>(g) * gridDim.x + s] = make_float2(mean, m2);
}

// Pass 2, one thread per group: the slices merged in slice order (Chan et al., in double) ->
// (mean, 1 / sqrt(var + eps)), the biased variance as vae.cpp.
__global__ void gn_finalize_kernel(const float2* __restrict__ part, int slices, long n, long len, int groups,
                                   float2* __restrict__ stat) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= groups) return;
  double cnt = 0, mean = 0, m2 = 0;
  for (int s = 0; s < slices; ++s) {
    const long b = s * len, e = min(n, b + len);
    if (e <= b) continue;
    const double nb = static_cast<double>(e - b);
    const float2 p = part[static_cast<long>(g) * slices + s];
    const double d = static_cast<double>(p.x) - mean, tot = cnt + nb;
    mean += d * nb / tot;
    m2 += static_cast<double>(p.y) + d * d * cnt * nb / tot;
    cnt = tot;
  }
  stat[g] =
      make_float2(static_cast<float>(mean), static_cast<float>(1.0 / sqrt(m2 / cnt + static_cast<double>(norm_eps))));
}

// Pass 3: (x - mean) * (rstd * gamma) + beta, SiLU after it when `act`, into y (fp32, the same
// [C][P] layout) or, when yt is set, into yt [P][ldt] as bf16 (tokens-major, for the attention).
__global__ void gn_apply_kernel(const float* __restrict__ x, long n, long len, const float2* __restrict__ stat, int per,
                                long P, const float* __restrict__ gamma, const float* __restrict__ beta, bool act,
                                float* __restrict__ y, bf16* __restrict__ yt, int ldt) {
  const int g = blockIdx.y;
  const long b = blockIdx.x * len, e = min(n, b + len);
  const float2 st = stat[g];
  const long base = static_cast<long>(g) * n;
  for (long i = b + threadIdx.x; i < e; i += blockDim.x) {
    const long cg = i / P, p = i - cg * P;
    const int ch = g * per + static_cast<int>(cg);
    const float scale = st.y * gamma[ch];
    float v = (x[base + i] - st.x) * scale + beta[ch];
    if (act) v = v / (1.0f + expf(-v));
    if (yt)
      yt[p * ldt + ch] = __float2bfloat16_rn(v);
    else
      y[base + i] = v;
  }
}

// One row per block: p[j] = exp(s[j] * scale - max) / sum for j < n, 0 for n <= j < ldp; the
// exponentials are kept in s. The sum runs in a fixed order.
__global__ void softmax_kernel(float* __restrict__ s, long lds, int n, float scale, bf16* __restrict__ p, long ldp) {
  __shared__ float sh[32];
  float* row = s + blockIdx.x * lds;
  bf16* out = p + blockIdx.x * ldp;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, row[j] * scale);
  mx = block_max(mx, sh);
  float acc = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(row[j] * scale - mx);
    row[j] = e;
    acc += e;
  }
  const float inv = 1.0f / block_sum_fixed(acc, sh);
  for (long j = threadIdx.x; j < ldp; j += blockDim.x) out[j] = __float2bfloat16_rn(j < n ? row[j] * inv : 0.0f);
}

// --- device weights ------------------------------------------------------------------------

struct dev_conv {  // weight [out][kp] bf16, the rows (in, dy, dx) zero-padded to kp (a multiple of 8)
  int out = 0, in = 0, k = 1, kp = 0;
  bf16* w = nullptr;
  float* b = nullptr;
};
struct dev_norm {
  float *gamma = nullptr, *beta = nullptr;
};
struct dev_linear {  // weight [c][cp] bf16, zero-padded columns
  int c = 0, cp = 0;
  bf16* w = nullptr;
  float* b = nullptr;
};
struct dev_resnet {
  dev_norm norm1, norm2;
  dev_conv conv1, conv2;
  bool has_shortcut = false;
  dev_conv shortcut;
};
struct dev_attention {
  dev_norm norm;
  dev_linear q, k, v, o;
};
struct dev_up {
  std::vector<dev_resnet> resnets;
  bool has_upsampler = false;
  dev_conv upsampler;
};

// Device memory that grows on demand (contents dropped); freed with its owner.
struct dev_buffer {
  void* p = nullptr;
  std::size_t bytes = 0;
  dev_buffer() = default;
  dev_buffer(const dev_buffer&) = delete;
  dev_buffer& operator=(const dev_buffer&) = delete;
  ~dev_buffer() {
    if (p) cudaFree(p);
  }
  result<void> reserve(std::size_t n, cudaStream_t st) {
    if (n <= bytes) return {};
    GFDIT_CUDA(cudaStreamSynchronize(st));  // the old buffer may still be read
    if (p) GFDIT_CUDA(cudaFree(p));
    p = nullptr;
    bytes = 0;
    GFDIT_CUDA(cudaMalloc(&p, n));
    bytes = n;
    return {};
  }
  template <class T>
  T* as(std::size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(p) + byte_offset);
  }
};

// Where a GEMM's algorithm is chosen: the shape of a conv's full chunk (or the attention's full
// query block), so the shorter last chunk runs the same kernel.
struct gemm_ref {
  long m = 0, n = 0, ldd = 0;
};

}  // namespace

struct gpu_vae_decoder::impl {
  vae_config c;
  int device = 0;
  cudaStream_t st = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* ws = nullptr;
  std::vector<void*> owned;  // weights
  std::map<std::tuple<long, long, long, long, long, long>, cublasLtMatmulAlgo_t> algos;

  bool has_post_quant = false, has_attention = false;
  dev_conv post_quant, conv_in, conv_out;
  dev_resnet mid0, mid1;
  dev_attention attention;
  std::vector<dev_up> ups;
  dev_norm norm_out;

  // Buffers for the current latent size (grown, never shrunk).
  long act_elems = 0;
  std::array<dev_buffer, 5> pool;  // fp32 activations; a resnet needs five at once
  dev_buffer latent, scratch, gn, xt, q, k, vt, o;

  ~impl() {
    if (st) cudaStreamSynchronize(st);
    for (void* p : owned) cudaFree(p);
    if (ws) cudaFree(ws);
    if (lt) cublasLtDestroy(lt);
    if (st) cudaStreamDestroy(st);
  }

  result<void> init(const vae_config& cfg, int dev) {
    c = cfg;
    device = dev;
    GFDIT_CUDA(cudaSetDevice(dev));
    GFDIT_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    GFDIT_CUBLAS(cublasLtCreate(&lt));
    GFDIT_CUDA(cudaMalloc(&ws, workspace_bytes));
    return {};
  }

  template <class T>
  result<T*> upload(const T* host, std::size_t count) {
    void* p = nullptr;
    GFDIT_CUDA(cudaMalloc(&p, std::max<std::size_t>(count, 1) * sizeof(T)));
    owned.push_back(p);
    GFDIT_CUDA(cudaMemcpy(p, host, count * sizeof(T), cudaMemcpyHostToDevice));
    return static_cast<T*>(p);
  }

  // [rows][cols] fp32 -> bf16 [rows][ld], the columns past cols zero.
  result<bf16*> upload_bf16(const std::vector<float>& w, long rows, long cols, long ld) {
    std::vector<std::uint16_t> h(static_cast<std::size_t>(rows * ld), 0);
    for (long r = 0; r < rows; ++r)
      for (long j = 0; j < cols; ++j)
        h[static_cast<std::size_t>(r * ld + j)] = to_bf16(w[static_cast<std::size_t>(r * cols + j)]);
    auto p = upload(h.data(), h.size());
    if (!p) return p.err();
    return reinterpret_cast<bf16*>(*p);
  }

  result<dev_conv> make_conv(int out, int in, int k, const std::vector<float>& w, const std::vector<float>& b) {
    dev_conv d;
    d.out = out, d.in = in, d.k = k;
    const long K = static_cast<long>(in) * k * k;
    d.kp = static_cast<int>(round_up(K, 8));
    auto pw = upload_bf16(w, out, K, d.kp);
    if (!pw) return pw.err();
    auto pb = upload(b.data(), b.size());
    if (!pb) return pb.err();
    d.w = *pw;
    d.b = *pb;
    return d;
  }
  result<dev_linear> make_linear(int ch, const std::vector<float>& w, const std::vector<float>& b) {
    dev_linear d;
    d.c = ch;
    d.cp = static_cast<int>(round_up(ch, 8));
    auto pw = upload_bf16(w, ch, ch, d.cp);
    if (!pw) return pw.err();
    auto pb = upload(b.data(), b.size());
    if (!pb) return pb.err();
    d.w = *pw;
    d.b = *pb;
    return d;
  }
  result<dev_norm> make_norm(const std::vector<float>& gamma, const std::vector<float>& beta) {
    auto g = upload(gamma.data(), gamma.size());
    if (!g) return g.err();
    auto b = upload(beta.data(), beta.size());
    if (!b) return b.err();
    return dev_norm{*g, *b};
  }

  // --- GEMM ---

  // The algorithm for a shape: the heuristic's first choice, asked once, with split-K off and
  // no reduction scheme allowed (the sum of each output has one order, in one kernel).
  // (A pointer into the cache: nvcc 13's front end fails on a result<> of the unnamed struct.)
  result<const cublasLtMatmulAlgo_t*> algo_for(long m, long n, long k, long lda, long ldb, long ldd) {
    const auto key = std::make_tuple(m, n, k, lda, ldb, ldd);
    if (auto it = algos.find(key); it != algos.end()) return &it->second;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    GFDIT_CUBLAS(make_desc(&op));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, k, m, lda));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, k, n, ldb));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&d, CUDA_R_32F, m, n, ldd));
    cublasLtMatmulAlgo_t al;
    auto r = fixed_lt_algorithm(
        lt, op, a, b, d, workspace_bytes, true,
        "vae gpu m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " + std::to_string(k), al);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(op);
    if (!r) return r.err();
    return &algos.emplace(key, al).first->second;
  }

  static cublasStatus_t make_desc(cublasLtMatmulDesc_t* op) {
    auto s = cublasLtMatmulDescCreate(op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    s = cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    return cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  }

  // D[j * ldd + i] = dot(A row i, B row j) over k, i < m, j < n: A [m][lda] and B [n][ldb] bf16
  // (rows of k, padded with zeros to a multiple of 8), D fp32, fp32 accumulation. In cuBLAS's
  // column-major terms D (m x n) = A^T B. The algorithm is the one chosen at `ref`.
  result<void> gemm(const bf16* A, long lda, long m, const bf16* B, long ldb, long n, long k, float* D, long ldd,
                    const gemm_ref& ref) {
    auto al = algo_for(ref.m, ref.n, k, lda, ldb, ref.ldd);
    if (!al) return al.err();
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    GFDIT_CUBLAS(make_desc(&op));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, k, m, lda));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, k, n, ldb));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&d, CUDA_R_32F, m, n, ldd));
    const float alpha = 1.0f, beta = 0.0f;
    const auto s = cublasLtMatmul(lt, op, &alpha, A, a, B, b, &beta, D, d, D, d, *al, ws, workspace_bytes, st);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(op);
    GFDIT_CUBLAS(s);
    return {};
  }

  // --- layers ---

  // y [out][H][W] = conv(x) (+ res), x [in][sh][sw]; H, W = sh, sw, or twice them with `up`
  // (nearest 2x, read straight from x by the im2col). Rows of pixels in chunks whose columns
  // and GEMM output fit the scratch budget; every chunk runs the full chunk's algorithm.
  result<void> conv(const dev_conv& cv, const float* x, int sh, int sw, bool up, const float* res, float* y) {
    const int H = up ? 2 * sh : sh, W = up ? 2 * sw : sw;
    const long P = static_cast<long>(H) * W;
    const long row_bytes = static_cast<long>(W) * (2L * cv.kp + 4L * cv.out);
    const long rows = std::clamp<long>(static_cast<long>(scratch_budget) / row_bytes, 1, H);
    const gemm_ref ref{rows * W, cv.out, round_up(rows * W, 8)};
    const std::size_t col_bytes = static_cast<std::size_t>(round_up(ref.m * cv.kp * 2, 256));
    if (auto r = scratch.reserve(col_bytes + static_cast<std::size_t>(ref.ldd) * cv.out * 4, st); !r) return r;
    bf16* col = scratch.as<bf16>();
    float* out = scratch.as<float>(col_bytes);
    const int threads = static_cast<int>(std::min<long>(256, round_up(cv.kp, 32)));
    for (long r0 = 0; r0 < H; r0 += rows) {
      const long np = std::min(rows, H - r0) * W, p0 = r0 * W;
      if (cv.k == 3)
        im2col_kernel<3><<<static_cast<unsigned>(np), threads, 0, st>>>(x, cv.in, sh, sw, up, p0, cv.kp, col);
      else
        im2col_kernel<1><<<static_cast<unsigned>(np), threads, 0, st>>>(x, cv.in, sh, sw, up, p0, cv.kp, col);
      GFDIT_CUDA(cudaGetLastError());
      const long ldd = round_up(np, 8);
      if (auto g = gemm(col, cv.kp, np, cv.w, cv.kp, cv.out, cv.kp, out, ldd, ref); !g) return g;
      bias_residual_kernel<<<grid_for(np * cv.out), 256, 0, st>>>(out, ldd, cv.b, res, y, cv.out, np, p0, P);
      GFDIT_CUDA(cudaGetLastError());
    }
    return {};
  }

  // GroupNorm (+SiLU) of x [C][P]: into y (fp32, [C][P]) or, with yt, into yt [P][ldt] as bf16.
  result<void> group_norm(const float* x, int C, long P, const dev_norm& nm, bool act, float* y, bf16* yt = nullptr,
                          int ldt = 0) {
    const int G = c.norm_num_groups, per = C / G;
    const long n = static_cast<long>(per) * P;
    const int S = static_cast<int>(std::clamp<long>((n + gn_slice - 1) / gn_slice, 1, gn_max_slices));
    const long len = (n + S - 1) / S;
    const std::size_t part_bytes = static_cast<std::size_t>(G) * S * sizeof(float2);
    if (auto r = gn.reserve(part_bytes + G * sizeof(float2), st); !r) return r;
    float2* part = gn.as<float2>();
    float2* stat = gn.as<float2>(part_bytes);
    gn_stats_kernel<<<dim3(S, G), 256, 0, st>>>(x, n, len, part);
    GFDIT_CUDA(cudaGetLastError());
    gn_finalize_kernel<<<(G + 63) / 64, 64, 0, st>>>(part, S, n, len, G, stat);
    GFDIT_CUDA(cudaGetLastError());
    gn_apply_kernel<<<dim3(S, G), 256, 0, st>>>(x, n, len, stat, per, P, nm.gamma, nm.beta, act, y, yt, ldt);
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  result<void> convert_bf16(const float* src, long lds, const float* bias, int mode, bf16* dst, long ldd, long rows,
                            long cols) {
    to_bf16_kernel<<<grid_for(rows * ldd), 256, 0, st>>>(src, lds, bias, mode, dst, ldd, rows, cols);
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  // y = x + to_out(softmax(q k^T / sqrt(C)) v) over the T = h*w tokens, one head of dim C, q/k/v
  // from the GroupNorm of x. t1, t2: fp32 temporaries of pool size.
  result<void> run_attention(const dev_attention& a, const float* x, int h, int w, float* y, float* t1, float* t2) {
    const int C = a.q.c;
    const long Cp = a.q.cp, T = static_cast<long>(h) * w, Tp = round_up(T, 8);
    bf16 *xtp = xt.as<bf16>(), *qp = q.as<bf16>(), *kp = k.as<bf16>(), *vtp = vt.as<bf16>(), *op = o.as<bf16>();
    if (Cp != C) GFDIT_CUDA(cudaMemsetAsync(xtp, 0, static_cast<std::size_t>(T * Cp) * sizeof(bf16), st));
    if (auto r = group_norm(x, C, T, a.norm, false, nullptr, xtp, static_cast<int>(Cp)); !r) return r;
    // q, k [T][Cp]: row t = W xt[t] + b.
    for (auto [lin, dst] : {std::pair{&a.q, qp}, std::pair{&a.k, kp}}) {
      if (auto r = gemm(lin->w, Cp, C, xtp, Cp, T, Cp, t1, Cp, {C, T, Cp}); !r) return r;
      if (auto r = convert_bf16(t1, Cp, lin->b, 1, dst, Cp, T, C); !r) return r;
    }
    // v^T [C][Tp]: each channel a row over the tokens (the keys' side of p v).
    if (auto r = gemm(xtp, Cp, T, a.v.w, Cp, C, Cp, t1, Tp, {T, C, Tp}); !r) return r;
    if (auto r = convert_bf16(t1, Tp, a.v.b, 2, vtp, Tp, C, T); !r) return r;
    // Blocks of query rows whose scores (fp32) and probabilities (bf16) fit the scratch budget.
    const long qc = std::clamp<long>(static_cast<long>(scratch_budget) / (Tp * 6) / 8 * 8, 8, round_up(T, 8));
    const std::size_t s_bytes = static_cast<std::size_t>(round_up(qc * Tp * 4, 256));
    if (auto r = scratch.reserve(s_bytes + static_cast<std::size_t>(qc * Tp) * 2, st); !r) return r;
    float* s = scratch.as<float>();
    bf16* p = scratch.as<bf16>(s_bytes);
    const float scale = 1.0f / std::sqrt(static_cast<float>(C));
    for (long q0 = 0; q0 < T; q0 += qc) {
      const long nq = std::min(qc, T - q0);
      // s[j][i] = q[q0 + j] . k[i]
      if (auto r = gemm(kp, Cp, T, qp + q0 * Cp, Cp, nq, Cp, s, Tp, {T, qc, Tp}); !r) return r;
      softmax_kernel<<<static_cast<unsigned>(nq), 256, 0, st>>>(s, Tp, static_cast<int>(T), scale, p, Tp);
      GFDIT_CUDA(cudaGetLastError());
      // out rows q0.. [nq][Cp] = p v
      if (auto r = gemm(vtp, Tp, C, p, Tp, nq, Tp, t2 + q0 * Cp, Cp, {C, qc, Cp}); !r) return r;
    }
    if (auto r = convert_bf16(t2, Cp, nullptr, 0, op, Cp, T, C); !r) return r;
    // to_out straight into [C][T], then bias and the residual.
    if (auto r = gemm(op, Cp, T, a.o.w, Cp, C, Cp, t1, Tp, {T, C, Tp}); !r) return r;
    bias_residual_kernel<<<grid_for(T * C), 256, 0, st>>>(t1, Tp, a.o.b, x, y, C, T, 0, T);
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  result<void> run_resnet(const dev_resnet& r, const float* x, int h, int w, float* y, float* t1, float* t2,
                          float* t3) {
    const long P = static_cast<long>(h) * w;
    if (auto e = group_norm(x, r.conv1.in, P, r.norm1, true, t1); !e) return e;
    if (auto e = conv(r.conv1, t1, h, w, false, nullptr, t2); !e) return e;
    if (auto e = group_norm(t2, r.conv1.out, P, r.norm2, true, t1); !e) return e;
    const float* res = x;
    if (r.has_shortcut) {
      if (auto e = conv(r.shortcut, x, h, w, false, nullptr, t3); !e) return e;
      res = t3;
    }
    return conv(r.conv2, t1, h, w, false, res, y);
  }

  // The largest fp32 map the decode of an h x w latent holds (the attention's padded
  // intermediates included).
  long activation_elems(int h, int w) const {
    const int top = c.block_out_channels.back();
    long P = static_cast<long>(h) * w;
    long m = static_cast<long>(std::max(c.latent_channels, top)) * P;
    if (has_attention) m = std::max({m, P * round_up(top, 8), round_up(P, 8) * top});
    int prev = top;
    const int blocks = static_cast<int>(c.block_out_channels.size());
    for (int i = 0; i < blocks; ++i) {
      const int out = c.block_out_channels[blocks - 1 - i];
      m = std::max(m, static_cast<long>(std::max(prev, out)) * P);
      if (ups[i].has_upsampler) {
        P *= 4;
        m = std::max(m, static_cast<long>(out) * P);
      }
      prev = out;
    }
    return std::max(m, static_cast<long>(c.out_channels) * P);
  }

  result<void> ensure_buffers(int h, int w) {
    const long need = activation_elems(h, w);
    for (auto& b : pool)
      if (auto r = b.reserve(static_cast<std::size_t>(need) * sizeof(float), st); !r) return r;
    if (auto r = latent.reserve(static_cast<std::size_t>(c.latent_channels) * h * w * sizeof(float), st); !r) return r;
    if (has_attention) {
      const long T = static_cast<long>(h) * w, C = c.block_out_channels.back();
      const std::size_t tc = static_cast<std::size_t>(T * round_up(C, 8)) * sizeof(bf16);
      for (dev_buffer* b : {&xt, &q, &k, &o})
        if (auto r = b->reserve(tc, st); !r) return r;
      if (auto r = vt.reserve(static_cast<std::size_t>(C * round_up(T, 8)) * sizeof(bf16), st); !r) return r;
    }
    return {};
  }

  // One image: z [latent_channels][h][w] (device, already unscaled) -> the returned buffer
  // [out_channels][sh][sw] (a pool buffer, valid until the next decode).
  result<const float*> decode_one(const float* z, int h, int w) {
    std::array<float*, 5> buf;
    for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = pool[i].as<float>();
    // The four pool buffers other than `cur`, in pool order.
    const auto others = [&](const float* cur) {
      std::array<float*, 4> r{};
      std::size_t n = 0;
      for (float* b : buf)
        if (b != cur && n < r.size()) r[n++] = b;
      return r;
    };
    const float* x = z;
    if (has_post_quant) {
      if (auto r = conv(post_quant, z, h, w, false, nullptr, buf[0]); !r) return r.err();
      x = buf[0];
    }
    float* cur = buf[1];
    if (auto r = conv(conv_in, x, h, w, false, nullptr, cur); !r) return r.err();
    const auto resnet = [&](const dev_resnet& rn) -> result<void> {
      const auto t = others(cur);
      if (auto r = run_resnet(rn, cur, h, w, t[0], t[1], t[2], t[3]); !r) return r;
      cur = t[0];
      return {};
    };
    if (auto r = resnet(mid0); !r) return r.err();
    if (has_attention) {
      const auto t = others(cur);
      if (auto r = run_attention(attention, cur, h, w, t[0], t[1], t[2]); !r) return r.err();
      cur = t[0];
    }
    if (auto r = resnet(mid1); !r) return r.err();
    for (const auto& u : ups) {
      for (const auto& rn : u.resnets)
        if (auto r = resnet(rn); !r) return r.err();
      if (u.has_upsampler) {
        const auto t = others(cur);
        if (auto r = conv(u.upsampler, cur, h, w, true, nullptr, t[0]); !r) return r.err();
        cur = t[0];
        h *= 2;
        w *= 2;
      }
    }
    const auto t = others(cur);
    if (auto r = group_norm(cur, conv_out.in, static_cast<long>(h) * w, norm_out, true, t[1]); !r) return r.err();
    if (auto r = conv(conv_out, t[1], h, w, false, nullptr, t[0]); !r) return r.err();
    return static_cast<const float*>(t[0]);
  }

  int scale() const { return 1 << c.upsamplers(); }

  // vae_decoder::decode's checks, for a batch.
  result<void> check(std::size_t values, int batch, int h, int w) const {
    if (batch < 1 || batch > max_batch)
      return make_error(errc::invalid_argument,
                        "vae gpu decode: batch " + std::to_string(batch) + " (1.." + std::to_string(max_batch) + ")");
    if (h < 1 || w < 1 || h > max_latent_side || w > max_latent_side)
      return make_error(errc::invalid_argument, "vae gpu decode: latent size " + std::to_string(h) + "x" +
                                                    std::to_string(w) + " (each side 1.." +
                                                    std::to_string(max_latent_side) + ")");
    const std::size_t want = static_cast<std::size_t>(batch) * c.latent_channels * h * w;
    if (values != want)
      return make_error(errc::invalid_argument, "vae gpu decode: latents have " + std::to_string(values) +
                                                    " values, expected " + std::to_string(want) + " (" +
                                                    std::to_string(batch) + " x " + std::to_string(c.latent_channels) +
                                                    " x " + std::to_string(h) + " x " + std::to_string(w) + ")");
    return {};
  }
};

gpu_vae_decoder::gpu_vae_decoder(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
gpu_vae_decoder::~gpu_vae_decoder() = default;

const vae_config& gpu_vae_decoder::config() const noexcept { return impl_->c; }

result<std::unique_ptr<gpu_vae_decoder>> gpu_vae_decoder::upload(const vae_decoder& cpu, int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    return make_error(errc::not_found, "vae gpu: no CUDA device");
  if (device < 0 || device >= count)
    return make_error(errc::invalid_argument,
                      "vae gpu: device " + std::to_string(device) + " (there are " + std::to_string(count) + ")");
  auto p = std::make_unique<impl>();
  if (auto r = p->init(cpu.config_, device); !r) return r.err();
  // vae_decoder's weights, one struct at a time (its types are private: reached through auto).
  const auto conv = [&](const auto& cv, dev_conv& dst) -> result<void> {
    auto d = p->make_conv(cv.out, cv.in, cv.k, cv.w, cv.b);
    if (!d) return d.err();
    dst = *d;
    return {};
  };
  const auto norm = [&](const auto& n, dev_norm& dst) -> result<void> {
    auto d = p->make_norm(n.gamma, n.beta);
    if (!d) return d.err();
    dst = *d;
    return {};
  };
  const auto linear = [&](const auto& l, dev_linear& dst) -> result<void> {
    auto d = p->make_linear(l.out, l.w, l.b);
    if (!d) return d.err();
    dst = *d;
    return {};
  };
  const auto resnet = [&](const auto& r, dev_resnet& dst) -> result<void> {
    for (auto e :
         {norm(r.norm1, dst.norm1), norm(r.norm2, dst.norm2), conv(r.conv1, dst.conv1), conv(r.conv2, dst.conv2)})
      if (!e) return e;
    dst.has_shortcut = r.shortcut.has_value();
    if (r.shortcut) return conv(*r.shortcut, dst.shortcut);
    return {};
  };
  if (cpu.post_quant_conv_) {
    p->has_post_quant = true;
    if (auto r = conv(*cpu.post_quant_conv_, p->post_quant); !r) return r.err();
  }
  if (auto r = conv(cpu.conv_in_, p->conv_in); !r) return r.err();
  if (auto r = resnet(cpu.mid_resnet0_, p->mid0); !r) return r.err();
  if (cpu.mid_attention_) {
    const auto& a = *cpu.mid_attention_;
    p->has_attention = true;
    for (auto r : {norm(a.group_norm, p->attention.norm), linear(a.q, p->attention.q), linear(a.k, p->attention.k),
                   linear(a.v, p->attention.v), linear(a.o, p->attention.o)})
      if (!r) return r.err();
  }
  if (auto r = resnet(cpu.mid_resnet1_, p->mid1); !r) return r.err();
  for (const auto& u : cpu.up_blocks_) {
    dev_up d;
    for (const auto& rn : u.resnets) {
      d.resnets.emplace_back();
      if (auto r = resnet(rn, d.resnets.back()); !r) return r.err();
    }
    if (u.upsampler) {
      d.has_upsampler = true;
      if (auto r = conv(*u.upsampler, d.upsampler); !r) return r.err();
    }
    p->ups.push_back(std::move(d));
  }
  if (auto r = norm(cpu.norm_out_, p->norm_out); !r) return r.err();
  if (auto r = conv(cpu.conv_out_, p->conv_out); !r) return r.err();
  return std::unique_ptr<gpu_vae_decoder>(new gpu_vae_decoder(std::move(p)));
}

result<std::vector<float>> gpu_vae_decoder::decode(std::span<const float> latents, int batch, int h, int w) {
  impl& m = *impl_;
  if (auto r = m.check(latents.size(), batch, h, w); !r) return r.err();
  // vae_decoder::decode's arithmetic for the scaling, on the host.
  const std::size_t in = static_cast<std::size_t>(m.c.latent_channels) * h * w;
  std::vector<float> z(latents.size());
  for (std::size_t i = 0; i < z.size(); ++i) {
    if (!std::isfinite(latents[i]))
      return make_error(errc::invalid_argument, "vae gpu decode: latent " + std::to_string(i / in) + ", element " +
                                                    std::to_string(i % in) + " is not finite");
    z[i] = latents[i] / m.c.scaling_factor + m.c.shift_factor;
  }
  GFDIT_CUDA(cudaSetDevice(m.device));
  if (auto r = m.ensure_buffers(h, w); !r) return r.err();
  const std::size_t out = static_cast<std::size_t>(m.c.out_channels) * h * w * m.scale() * m.scale();
  std::vector<float> image(out * batch);
  float* dz = m.latent.as<float>();
  for (int b = 0; b < batch; ++b) {  // one image at a time: the same GEMM shapes for each
    GFDIT_CUDA(cudaMemcpyAsync(dz, z.data() + b * in, in * sizeof(float), cudaMemcpyHostToDevice, m.st));
    auto y = m.decode_one(dz, h, w);
    if (!y) return y.err();
    GFDIT_CUDA(cudaMemcpyAsync(image.data() + b * out, *y, out * sizeof(float), cudaMemcpyDeviceToHost, m.st));
  }
  GFDIT_CUDA(cudaStreamSynchronize(m.st));
  return image;
}

result<double> gpu_vae_decoder::time_decode(int batch, int h, int w, int iters) {
  impl& m = *impl_;
  if (iters < 1) return make_error(errc::invalid_argument, "vae gpu time_decode: iters must be positive");
  const std::size_t in = static_cast<std::size_t>(m.c.latent_channels) * h * w;
  if (auto r = m.check(in * std::max(batch, 0), batch, h, w); !r) return r.err();
  std::vector<float> z(in * batch);
  for (std::size_t i = 0; i < z.size(); ++i)  // seeded unit-variance latents, unscaled as decode does
    z[i] = counter_normal(0x7ae5eed, i) / m.c.scaling_factor + m.c.shift_factor;
  GFDIT_CUDA(cudaSetDevice(m.device));
  if (auto r = m.ensure_buffers(h, w); !r) return r.err();
  dev_buffer all;
  if (auto r = all.reserve(z.size() * sizeof(float), m.st); !r) return r.err();
  GFDIT_CUDA(cudaMemcpyAsync(all.p, z.data(), z.size() * sizeof(float), cudaMemcpyHostToDevice, m.st));
  const auto run = [&]() -> result<void> {
    for (int b = 0; b < batch; ++b)
      if (auto y = m.decode_one(all.as<float>(b * in * sizeof(float)), h, w); !y) return y.err();
    return {};
  };
  if (auto r = run(); !r) return r.err();  // buffers, scratch and algorithms settle
  GFDIT_CUDA(cudaStreamSynchronize(m.st));
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  GFDIT_CUDA(cudaEventCreate(&e0));
  if (const auto s = cudaEventCreate(&e1); s != cudaSuccess) {
    cudaEventDestroy(e0);
    GFDIT_CUDA(s);
  }
  std::vector<double> ms;
  const auto timed = [&]() -> result<void> {
    for (int i = 0; i < iters; ++i) {
      GFDIT_CUDA(cudaEventRecord(e0, m.st));
      if (auto r = run(); !r) return r;
      GFDIT_CUDA(cudaEventRecord(e1, m.st));
      GFDIT_CUDA(cudaEventSynchronize(e1));
      float t = 0;
      GFDIT_CUDA(cudaEventElapsedTime(&t, e0, e1));
      ms.push_back(t);
    }
    return {};
  };
  const auto status = timed();
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (!status) return status.err();
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace gfdit::dit
