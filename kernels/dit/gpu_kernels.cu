// The DiT's fused elementwise kernels and the plain attention; launchers are host functions so
// the engine (gpu_forward.cpp) compiles as ordinary C++.
#include "kernels/dit/gpu_kernels.hpp"

#include <algorithm>

#include "kernels/collectives/types.hpp"

namespace gfdit::dit::gpu {

namespace {
int grid_for(long total) { return static_cast<int>(std::min<long>((total + 255) / 256, 132L * 16)); }

// Block-wide sum in a fixed order: strided per-thread sums, then a fixed shared-memory tree.
__device__ float block_sum(float v, float* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  const float r = sh[0];
  __syncthreads();
  return r;
}

// y = LN(x) * (1 + scale) + shift, one row per block; mod rows per sample.
__global__ void ln_mod_kernel(const float* x, int H, int rows_per_sample, const bf16* mod, int mod_stride,
                              int shift_off, int scale_off, bf16* y) {
  __shared__ float sh[256];
  const long row = blockIdx.x;
  const float* xr = x + row * H;
  const bf16* md = mod + (row / rows_per_sample) * mod_stride;
  float s = 0;
  for (int i = threadIdx.x; i < H; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s, sh) / H;
  float v = 0;
  for (int i = threadIdx.x; i < H; i += blockDim.x) v += (xr[i] - mean) * (xr[i] - mean);
  const float rstd = rsqrtf(block_sum(v, sh) / H + 1e-6f);
  for (int i = threadIdx.x; i < H; i += blockDim.x)
    y[row * H + i] = __float2bfloat16((xr[i] - mean) * rstd * (1.0f + __bfloat162float(md[scale_off + i])) +
                                      __bfloat162float(md[shift_off + i]));
}

// RoPE of one pair; shared by split_rope and the Ulysses pack so both round alike.
__device__ __forceinline__ void rotate(float& a0, float& a1, float c, float s) {
  const float r0 = a0 * c - a1 * s, r1 = a0 * s + a1 * c;
  a0 = r0;
  a1 = r1;
}

// [B*nloc, 3, NH, D] -> q, k, v [B, NH, ntot, Dp] at tokens l0.., rotating q and k by cos/sin [ntot, D/2].
__global__ void split_rope_kernel(const bf16* qkv, bf16* q, bf16* k, bf16* v, const float* cs, const float* sn,
                                  int B, int nloc, int l0, int ntot, int NH, int D, int Dp) {
  const long pairs = static_cast<long>(B) * nloc * 3 * NH * (D / 2);
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < pairs; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int p = static_cast<int>(i % (D / 2));
    long r = i / (D / 2);
    const int h = static_cast<int>(r % NH); r /= NH;
    const int part = static_cast<int>(r % 3); r /= 3;
    const int l = static_cast<int>(r % nloc);
    const int b = static_cast<int>(r / nloc);
    const bf16* src = qkv + ((static_cast<long>(b) * nloc + l) * 3 + part) * NH * D + h * D + 2 * p;
    float a0 = __bfloat162float(src[0]), a1 = __bfloat162float(src[1]);
    if (cs && part < 2) rotate(a0, a1, cs[static_cast<long>(l0 + l) * (D / 2) + p], sn[static_cast<long>(l0 + l) * (D / 2) + p]);
    bf16* dst = (part == 0 ? q : part == 1 ? k : v) + ((static_cast<long>(b) * NH + h) * ntot + l0 + l) * Dp + 2 * p;
    dst[0] = __float2bfloat16(a0);
    dst[1] = __float2bfloat16(a1);
  }
}

// [B, NH, ntot, Dp] tokens l0.. -> [B*nloc, NH*D]
__global__ void merge_heads_kernel(const bf16* o, bf16* y, int B, int nloc, int l0, int ntot, int NH, int D, int Dp) {
  const long total = static_cast<long>(B) * nloc * NH * D;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int e = static_cast<int>(i % D);
    long r = i / D;
    const int h = static_cast<int>(r % NH); r /= NH;
    const int l = static_cast<int>(r % nloc);
    const int b = static_cast<int>(r / nloc);
    y[i] = o[((static_cast<long>(b) * NH + h) * ntot + l0 + l) * Dp + e];
  }
}

// x += gate * y (x fp32 residual).
__global__ void gated_residual_kernel(float* x, const bf16* y, const bf16* mod, int mod_stride, int gate_off,
                                      int rows_per_sample, int H, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const long row = i / H;
    const int c = static_cast<int>(i % H);
    x[i] += __bfloat162float(mod[(row / rows_per_sample) * mod_stride + gate_off + c]) * __bfloat162float(y[i]);
  }
}

__global__ void gelu_kernel(bf16* y, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(y[i]);
    y[i] = __float2bfloat16(0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))));
  }
}

__global__ void silu_kernel(bf16* y, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(y[i]);
    y[i] = __float2bfloat16(x / (1.0f + expf(-x)));
  }
}

// silu(fc2 + class row) -> bf16, per sample
__global__ void cond_kernel(const bf16* t, const float* extra, bf16* out, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(t[i]) + (extra ? extra[i] : 0.0f);
    out[i] = __float2bfloat16(x / (1.0f + expf(-x)));
  }
}

// x[b, l] = text row (l < nt) or image row + pos (fp32 residual).
__global__ void assemble_kernel(float* x, const bf16* txt, const bf16* img, const float* pos, int B, int nt, int ni, int H) {
  const int n = nt + ni;
  const long total = static_cast<long>(B) * n * H;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % H);
    const long r = i / H;
    const int l = static_cast<int>(r % n), b = static_cast<int>(r / n);
    if (l < nt) {
      x[i] = __bfloat162float(txt[(static_cast<long>(b) * nt + l) * H + c]);
    } else {
      const int li = l - nt;
      x[i] = __bfloat162float(img[(static_cast<long>(b) * ni + li) * H + c]) + (pos ? pos[static_cast<long>(li) * H + c] : 0.0f);
    }
  }
}

// Plain attention for head sizes the tensor-core kernels do not take: one block per (b, h, i),
// keys visited in index order, fp32 online softmax (deterministic; not fast).
__global__ void naive_attention_kernel(const bf16* q, const bf16* k, const bf16* v, bf16* o, int n, int D, float scale) {
  extern __shared__ float sm[];  // [D] q row, [D] accumulator
  const long bh = blockIdx.y;
  const int i = blockIdx.x;
  const bf16* qi = q + (bh * n + i) * D;
  float* qs = sm;
  float* acc = sm + D;
  __shared__ float red[128];
  for (int e = threadIdx.x; e < D; e += blockDim.x) { qs[e] = __bfloat162float(qi[e]); acc[e] = 0; }
  __syncthreads();
  float m = -INFINITY, l = 0;
  for (int j = 0; j < n; ++j) {
    const bf16* kj = k + (bh * n + j) * D;
    float part = 0;
    for (int e = threadIdx.x; e < D; e += blockDim.x) part += qs[e] * __bfloat162float(kj[e]);
    red[threadIdx.x] = part;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
      __syncthreads();
    }
    const float sc = red[0] * scale;
    __syncthreads();
    const float mn = fmaxf(m, sc), alpha = expf(m - mn), p = expf(sc - mn);
    l = l * alpha + p;
    const bf16* vj = v + (bh * n + j) * D;
    for (int e = threadIdx.x; e < D; e += blockDim.x) acc[e] = acc[e] * alpha + p * __bfloat162float(vj[e]);
    m = mn;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < D; e += blockDim.x) o[(bh * n + i) * D + e] = __float2bfloat16(acc[e] / l);
}

// Ulysses layouts. A rank's local rows are its text shard, then its image shard (token_shard of
// each); member j of `deg` holds global text tokens [shard_begin(nt, j), ..) and image tokens
// nt + [shard_begin(ni, j), ..) (the collectives' balanced split, constexpr: callable here).
// Owner and local row of global token g.
__device__ __forceinline__ void locate(long g, long nt, long ni, int deg, int& j, long& l) {
  const bool txt = g < nt;
  const long t = txt ? nt : ni, i = txt ? g : g - nt, q = t / deg, r = t % deg;
  j = static_cast<int>(i < r * (q + 1) ? i / (q + 1) : r + (i - r * (q + 1)) / q);
  l = i - coll::shard_begin(t, deg, j) + (txt ? 0 : coll::shard_rows(nt, deg, j));
}

// qkv [B*nloc, 3, NH, D] (RoPE by local tables cs/sn [nloc, D/2], null: none) ->
// send[j][part][b][hc][l][Dp] for head chunk c (heads j*HL + c*HC.., HC of them per member; the
// whole group of HL when HC == HL), rows padded to R, columns D..Dp zero.
__global__ void ulysses_pack_qkv_kernel(const bf16* qkv, const float* cs, const float* sn, bf16* send, int B, int nloc,
                                        int NH, int D, int Dp, int HL, int R, int HC, int c) {
  const int NC = NH / HL * HC;  // heads of this chunk over all members
  const long pairs = static_cast<long>(B) * nloc * 3 * NC * (Dp / 2);
  const long seg = 3L * B * HC * R * Dp;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < pairs; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int p = static_cast<int>(i % (Dp / 2));
    long r = i / (Dp / 2);
    const int hh = static_cast<int>(r % NC); r /= NC;
    const int part = static_cast<int>(r % 3); r /= 3;
    const int l = static_cast<int>(r % nloc);
    const int b = static_cast<int>(r / nloc);
    const int j = hh / HC, hc = hh % HC, h = j * HL + c * HC + hc;
    float a0 = 0, a1 = 0;
    if (2 * p < D) {
      const bf16* src = qkv + ((static_cast<long>(b) * nloc + l) * 3 + part) * NH * D + h * D + 2 * p;
      a0 = __bfloat162float(src[0]);
      a1 = __bfloat162float(src[1]);
      if (cs && part < 2) rotate(a0, a1, cs[static_cast<long>(l) * (D / 2) + p], sn[static_cast<long>(l) * (D / 2) + p]);
    }
    bf16* dst = send + j * seg + (((static_cast<long>(part) * B + b) * HC + hc) * R + l) * Dp + 2 * p;
    dst[0] = __float2bfloat16(a0);
    dst[1] = __float2bfloat16(a1);
  }
}

// recv[j][part][b][hl][l][Dp] -> q, k, v [B, HL, ntot, Dp] in global token order (16-byte moves).
__global__ void ulysses_unpack_qkv_kernel(const uint4* recv, uint4* q, uint4* k, uint4* v, int B, int HL, long nt,
                                          long ni, int deg, int R, int Dp) {
  const int w = Dp / 8;  // uint4 per head row
  const long ntot = nt + ni, total = 3L * B * HL * ntot * w;
  const long seg = 3L * B * HL * R * w;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int e = static_cast<int>(i % w);
    long r = i / w;
    const long g = r % ntot; r /= ntot;
    const int hl = static_cast<int>(r % HL); r /= HL;
    const int b = static_cast<int>(r % B);
    const int part = static_cast<int>(r / B);
    int j;
    long l;
    locate(g, nt, ni, deg, j, l);
    uint4* dst = part == 0 ? q : part == 1 ? k : v;
    dst[((static_cast<long>(b) * HL + hl) * ntot + g) * w + e] = recv[j * seg + (((static_cast<long>(part) * B + b) * HL + hl) * R + l) * w + e];
  }
}

// o [B, HL, ntot, Dp] -> send[j][b][l][hl][D]: member j's tokens of my heads (8 bf16 per move).
__global__ void ulysses_pack_o_kernel(const uint4* o, uint4* send, int B, int HL, long nt, long ni, int deg, int R, int D,
                                      int Dp) {
  const int w = D / 8, wp = Dp / 8;
  const long ntot = nt + ni, total = static_cast<long>(B) * HL * ntot * w;
  const long seg = static_cast<long>(B) * R * HL * w;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int e = static_cast<int>(i % w);
    long r = i / w;
    const int hl = static_cast<int>(r % HL); r /= HL;
    const long g = r % ntot;
    const int b = static_cast<int>(r / ntot);
    int j;
    long l;
    locate(g, nt, ni, deg, j, l);
    send[j * seg + ((static_cast<long>(b) * R + l) * HL + hl) * w + e] = o[((static_cast<long>(b) * HL + hl) * ntot + g) * wp + e];
  }
}

// recv[j][b][l][hc][D] -> y [B*nloc, NH*D] columns of head chunk c (heads j*HL + c*HC.. came
// from member j; HC == HL: all of them).
__global__ void ulysses_unpack_o_kernel(const uint4* recv, uint4* y, int B, int nloc, int NH, int HL, int D, int R,
                                        int HC, int c) {
  const int w = D / 8, NC = NH / HL * HC;
  const long total = static_cast<long>(B) * nloc * NC * w;
  const long seg = static_cast<long>(B) * R * HC * w;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total; i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int e = static_cast<int>(i % w);
    long r = i / w;
    const int hh = static_cast<int>(r % NC); r /= NC;
    const int j = hh / HC, hc = hh % HC, h = j * HL + c * HC + hc;
    y[r * NH * w + h * w + e] = recv[j * seg + ((r / nloc * R + r % nloc) * HC + hc) * w + e];
  }
}

// Counter-based weights on the device (benchmarks): uniform(-scale, scale), bf16.
__global__ void generate_kernel(bf16* w, long count, unsigned long long stream, float scale) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < count; i += static_cast<long>(gridDim.x) * blockDim.x) {
    unsigned long long x = stream ^ (static_cast<unsigned long long>(i) * 0xd1b54a32d192ed03ull);
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    const float u = (static_cast<float>(x >> 40) + 0.5f) * (1.0f / 16777216.0f);
    w[i] = __float2bfloat16((2.0f * u - 1.0f) * scale);
  }
}

}  // namespace

void ln_mod(const float* x, long rows, int H, int rows_per_sample, const bf16* mod, int mod_stride, int shift_off,
            int scale_off, bf16* y, cudaStream_t st) {
  ln_mod_kernel<<<static_cast<unsigned>(rows), 256, 0, st>>>(x, H, rows_per_sample, mod, mod_stride, shift_off, scale_off, y);
}
void split_rope(const bf16* qkv, bf16* q, bf16* k, bf16* v, const float* cs, const float* sn, int B, int nloc, int l0,
                int ntot, int NH, int D, int Dp, cudaStream_t st) {
  const long pairs = static_cast<long>(B) * nloc * 3 * NH * (D / 2);
  split_rope_kernel<<<grid_for(pairs), 256, 0, st>>>(qkv, q, k, v, cs, sn, B, nloc, l0, ntot, NH, D, Dp);
}
void merge_heads(const bf16* o, bf16* y, int B, int nloc, int l0, int ntot, int NH, int D, int Dp, cudaStream_t st) {
  merge_heads_kernel<<<grid_for(static_cast<long>(B) * nloc * NH * D), 256, 0, st>>>(o, y, B, nloc, l0, ntot, NH, D, Dp);
}
void gated_residual(float* x, const bf16* y, const bf16* mod, int mod_stride, int gate_off, int rows_per_sample,
                    int H, long total, cudaStream_t st) {
  gated_residual_kernel<<<grid_for(total), 256, 0, st>>>(x, y, mod, mod_stride, gate_off, rows_per_sample, H, total);
}
void gelu(bf16* y, long total, cudaStream_t st) { gelu_kernel<<<grid_for(total), 256, 0, st>>>(y, total); }
void silu(bf16* y, long total, cudaStream_t st) { silu_kernel<<<grid_for(total), 256, 0, st>>>(y, total); }
void cond(const bf16* t, const float* extra, bf16* out, long total, cudaStream_t st) {
  cond_kernel<<<grid_for(total), 256, 0, st>>>(t, extra, out, total);
}
void assemble(float* x, const bf16* txt, const bf16* img, const float* pos, int B, int nt, int ni, int H, cudaStream_t st) {
  assemble_kernel<<<grid_for(static_cast<long>(B) * (nt + ni) * H), 256, 0, st>>>(x, txt, img, pos, B, nt, ni, H);
}
void naive_attention(const bf16* q, const bf16* k, const bf16* v, bf16* o, int BH, int n, int D, cudaStream_t st) {
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(BH));
  naive_attention_kernel<<<grid, 128, 2 * D * sizeof(float), st>>>(q, k, v, o, n, D, 1.0f / sqrtf(static_cast<float>(D)));
}
void ulysses_pack_qkv(const bf16* qkv, const float* cs, const float* sn, bf16* send, int B, int nloc, int NH, int D,
                      int Dp, int HL, int R, int HC, int c, cudaStream_t st) {
  const long pairs = static_cast<long>(B) * nloc * 3 * (NH / HL * HC) * (Dp / 2);
  ulysses_pack_qkv_kernel<<<grid_for(pairs), 256, 0, st>>>(qkv, cs, sn, send, B, nloc, NH, D, Dp, HL, R, HC, c);
}
void ulysses_unpack_qkv(const bf16* recv, bf16* q, bf16* k, bf16* v, int B, int HL, long nt, long ni, int deg, int R,
                        int Dp, cudaStream_t st) {
  ulysses_unpack_qkv_kernel<<<grid_for(3L * B * HL * (nt + ni) * (Dp / 8)), 256, 0, st>>>(
      reinterpret_cast<const uint4*>(recv), reinterpret_cast<uint4*>(q), reinterpret_cast<uint4*>(k),
      reinterpret_cast<uint4*>(v), B, HL, nt, ni, deg, R, Dp);
}
void ulysses_pack_o(const bf16* o, bf16* send, int B, int HL, long nt, long ni, int deg, int R, int D, int Dp,
                    cudaStream_t st) {
  ulysses_pack_o_kernel<<<grid_for(static_cast<long>(B) * HL * (nt + ni) * (D / 8)), 256, 0, st>>>(
      reinterpret_cast<const uint4*>(o), reinterpret_cast<uint4*>(send), B, HL, nt, ni, deg, R, D, Dp);
}
void ulysses_unpack_o(const bf16* recv, bf16* y, int B, int nloc, int NH, int HL, int D, int R, int HC, int c,
                      cudaStream_t st) {
  ulysses_unpack_o_kernel<<<grid_for(static_cast<long>(B) * nloc * (NH / HL * HC) * (D / 8)), 256, 0, st>>>(
      reinterpret_cast<const uint4*>(recv), reinterpret_cast<uint4*>(y), B, nloc, NH, HL, D, R, HC, c);
}
void generate(bf16* w, long count, unsigned long long stream, float scale, cudaStream_t st) {
  generate_kernel<<<grid_for(count), 256, 0, st>>>(w, count, stream, scale);
}

}  // namespace gfdit::dit::gpu
