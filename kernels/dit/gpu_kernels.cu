// The DiT's fused elementwise kernels and the plain attention; launchers are host functions so
// the engine (gpu_forward.cpp) compiles as ordinary C++.
#include "kernels/dit/gpu_kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/collectives/types.hpp"
#include "kernels/dit/block_sum.cuh"

namespace gfdit::dit::gpu {

namespace {
int grid_for(long total) { return static_cast<int>(std::min<long>((total + 255) / 256, 132L * 16)); }

// V consecutive values at p (V = 4: one 16-byte load of floats, one 8-byte load of bf16s).
template <int V>
__device__ __forceinline__ void load_f(const float* p, float (&v)[V]) {
  if constexpr (V == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
    v[0] = *p;
  }
}
template <int V>
__device__ __forceinline__ void load_bf(const bf16* p, float (&v)[V]) {
  if constexpr (V == 4) {
    const uint2 t = *reinterpret_cast<const uint2*>(p);
    const bf16* e = reinterpret_cast<const bf16*>(&t);
    for (int u = 0; u < 4; ++u) v[u] = __bfloat162float(e[u]);
  } else {
    v[0] = __bfloat162float(*p);
  }
}

// One row per block, V columns per access (V = 4 needs H % 4 == 0), the row held in registers
// (N accesses per thread cover it): with RESIDUAL first x += gate * y (stored; one gate row per
// sample, gate_stride apart), then out = LN(x) * (1 + scale) + shift. One mod row per
// `rows_per_sample` rows. The sums run in a
// fixed order that depends on H only (threads per row: ln_threads), so a row's bits do not
// depend on how many rows a launch covers. Rows past 256 * V * 4 take 1024 threads (the bounds
// let every instantiation launch with them; the wide ones then keep part of the row in local
// memory, which no stock config needs).
template <int V, int N, bool RESIDUAL>
__global__ void __launch_bounds__(1024)
    ln_mod_kernel(float* x, const bf16* y, const bf16* gate, int gate_stride, int H, int rows_per_sample,
                  const bf16* mod, int mod_stride, int shift_off, int scale_off, bf16* out) {
  __shared__ float sh[32];
  const long row = blockIdx.x;
  float* xr = x + row * H;
  const bf16* md = mod + (row / rows_per_sample) * mod_stride;
  const int step = blockDim.x * V;
  float a[N][V];
  float s = 0;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const int i = threadIdx.x * V + k * step;
    if (i >= H) break;
    load_f<V>(xr + i, a[k]);
    if constexpr (RESIDUAL) {
      float g[V], t[V];
      load_bf<V>(gate + (row / rows_per_sample) * gate_stride + i, g);
      load_bf<V>(y + row * H + i, t);
      for (int u = 0; u < V; ++u) a[k][u] += g[u] * t[u];
      if constexpr (V == 4)
        *reinterpret_cast<float4*>(xr + i) = make_float4(a[k][0], a[k][1], a[k][2], a[k][3]);
      else
        xr[i] = a[k][0];
    }
    for (int u = 0; u < V; ++u) s += a[k][u];
  }
  const float mean = block_sum_fixed(s, sh) / H;
  float var = 0;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    if (threadIdx.x * V + k * step >= H) break;
    for (int u = 0; u < V; ++u) var += (a[k][u] - mean) * (a[k][u] - mean);
  }
  const float rstd = rsqrtf(block_sum_fixed(var, sh) / H + 1e-6f);
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const int i = threadIdx.x * V + k * step;
    if (i >= H) break;
    float sc[V], sf[V];
    load_bf<V>(md + scale_off + i, sc);
    load_bf<V>(md + shift_off + i, sf);
    bf16 o[V];
    for (int u = 0; u < V; ++u) o[u] = __float2bfloat16((a[k][u] - mean) * rstd * (1.0f + sc[u]) + sf[u]);
    if constexpr (V == 4)
      *reinterpret_cast<uint2*>(out + row * H + i) = *reinterpret_cast<const uint2*>(o);
    else
      out[row * H + i] = o[0];
  }
}

// RoPE of one pair; shared by split_rope and the Ulysses pack so both round alike.
__device__ __forceinline__ void rotate(float& a0, float& a1, float c, float s) {
  const float r0 = a0 * c - a1 * s, r1 = a0 * s + a1 * c;
  a0 = r0;
  a1 = r1;
}

// RoPE of P consecutive pairs e[0..2P) by cos/sin table entries tab.. (split_rope and the Ulysses
// kernels call this one loop, so they round alike).
template <int P>
__device__ __forceinline__ void rotate_pairs(bf16* e, const float* cs, const float* sn, long tab) {
#pragma unroll
  for (int u = 0; u < P; ++u) {
    float a0 = __bfloat162float(e[2 * u]), a1 = __bfloat162float(e[2 * u + 1]);
    rotate(a0, a1, cs[tab + u], sn[tab + u]);
    e[2 * u] = __float2bfloat16(a0);
    e[2 * u + 1] = __float2bfloat16(a1);
  }
}

// V bf16s moved as one access: 16 bytes (V = 8), one rotation pair (V = 2) or one element.
template <int V>
using bf16_vec = std::conditional_t<V == 8, uint4, std::conditional_t<V == 2, std::uint32_t, std::uint16_t>>;

// [B*nloc, 3, NH, D] -> q, k, v [B, NH, ntot, Dp] at tokens l0.., rotating q and k by cos/sin
// [ntot, D/2]. One token row per block, V elements per access (V = 8 needs D % 8 == 0).
template <int V>
__global__ void split_rope_kernel(const bf16* qkv, bf16* q, bf16* k, bf16* v, const float* cs, const float* sn,
                                  int nloc, int l0, int ntot, int NH, int D, int Dp) {
  const int row = blockIdx.x, b = row / nloc, l = row % nloc;
  const int per_head = D / V, chunks = 3 * NH * per_head;
  const bf16* src = qkv + static_cast<long>(row) * 3 * NH * D;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    const int part = c / (NH * per_head), h = c / per_head % NH, j = c % per_head;
    bf16_vec<V> raw = *reinterpret_cast<const bf16_vec<V>*>(src + static_cast<long>(c) * V);
    if (cs && part < 2)
      rotate_pairs<V / 2>(reinterpret_cast<bf16*>(&raw), cs, sn, static_cast<long>(l0 + l) * (D / 2) + j * (V / 2));
    bf16* dst = (part == 0 ? q : part == 1 ? k : v) + ((static_cast<long>(b) * NH + h) * ntot + l0 + l) * Dp + j * V;
    *reinterpret_cast<bf16_vec<V>*>(dst) = raw;
  }
}

// [B, NH, ntot, Dp] tokens l0.. -> [B*nloc, NH*D]; one token row per block, V elements per access.
template <int V>
__global__ void merge_heads_kernel(const bf16* o, bf16* y, int nloc, int l0, int ntot, int NH, int D, int Dp) {
  const int row = blockIdx.x, b = row / nloc, l = row % nloc;
  const int per_head = D / V;
  bf16* dst = y + static_cast<long>(row) * NH * D;
  for (int c = threadIdx.x; c < NH * per_head; c += blockDim.x) {
    const int h = c / per_head, j = c % per_head;
    *reinterpret_cast<bf16_vec<V>*>(dst + static_cast<long>(c) * V) =
        *reinterpret_cast<const bf16_vec<V>*>(o + ((static_cast<long>(b) * NH + h) * ntot + l0 + l) * Dp + j * V);
  }
}

__global__ void gelu_kernel(bf16* y, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(y[i]);
    y[i] = __float2bfloat16(0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))));
  }
}

__global__ void silu_kernel(bf16* y, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(y[i]);
    y[i] = __float2bfloat16(x / (1.0f + expf(-x)));
  }
}

// silu(fc2 + class row) -> bf16, per sample
__global__ void cond_kernel(const bf16* t, const float* extra, bf16* out, long total) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const float x = __bfloat162float(t[i]) + (extra ? extra[i] : 0.0f);
    out[i] = __float2bfloat16(x / (1.0f + expf(-x)));
  }
}

// x[b, l] = text row (l < nt) or image row + pos (fp32 residual).
__global__ void assemble_kernel(float* x, const bf16* txt, const bf16* img, const float* pos, int B, int nt, int ni,
                                int H) {
  const int n = nt + ni;
  const long total = static_cast<long>(B) * n * H;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % H);
    const long r = i / H;
    const int l = static_cast<int>(r % n), b = static_cast<int>(r / n);
    if (l < nt) {
      x[i] = __bfloat162float(txt[(static_cast<long>(b) * nt + l) * H + c]);
    } else {
      const int li = l - nt;
      x[i] = __bfloat162float(img[(static_cast<long>(b) * ni + li) * H + c]) +
             (pos ? pos[static_cast<long>(li) * H + c] : 0.0f);
    }
  }
}

// Plain attention for head sizes the tensor-core kernels do not take: one block per (b, h, i),
// keys visited in index order, fp32 online softmax (deterministic; not fast).
__global__ void naive_attention_kernel(const bf16* q, const bf16* k, const bf16* v, bf16* o, int n, int D,
                                       float scale) {
  extern __shared__ float sm[];  // [D] q row, [D] accumulator
  const long bh = blockIdx.y;
  const int i = blockIdx.x;
  const bf16* qi = q + (bh * n + i) * D;
  float* qs = sm;
  float* acc = sm + D;
  __shared__ float red[128];
  for (int e = threadIdx.x; e < D; e += blockDim.x) {
    qs[e] = __bfloat162float(qi[e]);
    acc[e] = 0;
  }
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
// whole group of HL when HC == HL), rows padded to R, columns D..Dp zero. One local token row
// per block, 8 columns per access (D % 8 == 0); RoPE as split_rope, so both round alike.
__global__ void ulysses_pack_qkv_kernel(const bf16* qkv, const float* cs, const float* sn, bf16* send, int nloc, int NH,
                                        int D, int Dp, int HL, int R, int HC, int c, int B) {
  const int NC = NH / HL * HC;  // heads of this chunk over all members
  const int row = blockIdx.x, b = row / nloc, l = row % nloc, wp = Dp / 8;
  const long seg = 3L * B * HC * R * Dp;
  const bf16* src_row = qkv + static_cast<long>(row) * 3 * NH * D;
  for (int t = threadIdx.x; t < 3 * NC * wp; t += blockDim.x) {
    const int part = t / (NC * wp), hh = t / wp % NC, e = t % wp;
    const int j = hh / HC, hc = hh % HC, h = j * HL + c * HC + hc;
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (e * 8 < D) {
      raw = *reinterpret_cast<const uint4*>(src_row + (part * NH + h) * D + e * 8);
      if (cs && part < 2)
        rotate_pairs<4>(reinterpret_cast<bf16*>(&raw), cs, sn, static_cast<long>(l) * (D / 2) + e * 4);
    }
    *reinterpret_cast<uint4*>(send + j * seg + (((static_cast<long>(part) * B + b) * HC + hc) * R + l) * Dp + e * 8) =
        raw;
  }
}

// recv[j][part][b][hl][l][Dp] -> q, k, v [B, HL, ntot, Dp] in global token order (16-byte moves).
// One (global token, sample) per block.
__global__ void ulysses_unpack_qkv_kernel(const uint4* recv, uint4* q, uint4* k, uint4* v, int B, int HL, long nt,
                                          long ni, int deg, int R, int Dp) {
  const int w = Dp / 8;
  const long ntot = nt + ni, g = blockIdx.x, seg = 3L * B * HL * R * w;
  const int b = blockIdx.y;
  int j;
  long l;
  locate(g, nt, ni, deg, j, l);
  for (int t = threadIdx.x; t < 3 * HL * w; t += blockDim.x) {
    const int part = t / (HL * w), hl = t / w % HL, e = t % w;
    uint4* dst = part == 0 ? q : part == 1 ? k : v;
    dst[((static_cast<long>(b) * HL + hl) * ntot + g) * w + e] =
        recv[j * seg + (((static_cast<long>(part) * B + b) * HL + hl) * R + l) * w + e];
  }
}

// o [B, HL, ntot, Dp] -> send[j][b][l][hl][D]: member j's tokens of my heads (8 bf16 per move).
// One (global token, sample) per block.
__global__ void ulysses_pack_o_kernel(const uint4* o, uint4* send, int B, int HL, long nt, long ni, int deg, int R,
                                      int D, int Dp) {
  const int w = D / 8, wp = Dp / 8;
  const long ntot = nt + ni, g = blockIdx.x, seg = static_cast<long>(B) * R * HL * w;
  const int b = blockIdx.y;
  int j;
  long l;
  locate(g, nt, ni, deg, j, l);
  for (int t = threadIdx.x; t < HL * w; t += blockDim.x) {
    const int hl = t / w, e = t % w;
    send[j * seg + ((static_cast<long>(b) * R + l) * HL + hl) * w + e] =
        o[((static_cast<long>(b) * HL + hl) * ntot + g) * wp + e];
  }
}

// recv[j][b][l][hc][D] -> y [B*nloc, NH*D] columns of head chunk c (heads j*HL + c*HC.. came
// from member j; HC == HL: all of them). One local token row per block.
__global__ void ulysses_unpack_o_kernel(const uint4* recv, uint4* y, int nloc, int NH, int HL, int D, int R, int HC,
                                        int c, int B) {
  const int w = D / 8, NC = NH / HL * HC;
  const long row = blockIdx.x, seg = static_cast<long>(B) * R * HC * w;
  const long src_row = (row / nloc) * R + row % nloc;
  for (int t = threadIdx.x; t < NC * w; t += blockDim.x) {
    const int hh = t / w, e = t % w;
    const int j = hh / HC, hc = hh % HC, h = j * HL + c * HC + hc;
    y[row * NH * w + h * w + e] = recv[j * seg + (src_row * HC + hc) * w + e];
  }
}

// Direct Ulysses (gpu_kernels.hpp, ulysses_window): the owners' buffers are written in place,
// through the peers' mappings, then made visible system-wide before the kernel ends (the
// barrier that follows publishes them).
// qkv [B*nloc, 3, NH, D] -> q, k, v of head h's owner at my tokens' global rows, for the owner's
// (sample, head) pairs b * HL + hl in [p0, p1). One local token row at a time per block, 16 bytes
// per move, columns D..Dp zero. (A thread per independent piece, as ulysses_push_o_kernel, was
// 5-8% slower here.)
__global__ void ulysses_push_qkv_kernel(const bf16* qkv, const float* cs, const float* sn, ulysses_window w, int nloc,
                                        int NH, int D, int p0, int p1) {
  const int Dp = w.Dp, wp = Dp / 8, HL = w.HL;
  const long ntot = w.nt + w.ni, part_stride = w.qkv_elems();
  const long nt_me = coll::shard_rows(w.nt, w.deg, w.me);
  for (long row = blockIdx.x; row < static_cast<long>(w.B) * nloc; row += gridDim.x) {
    const int b = static_cast<int>(row / nloc), l = static_cast<int>(row % nloc);
    const int h0 = max(p0 - b * HL, 0), nh = min(p1 - b * HL, HL) - h0, per_part = w.deg * nh * wp;
    if (nh <= 0) continue;
    const long g = l < nt_me ? coll::shard_begin(w.nt, w.deg, w.me) + l
                             : w.nt + coll::shard_begin(w.ni, w.deg, w.me) + (l - nt_me);
    const bf16* src_row = qkv + row * 3 * NH * D;
    for (int t = threadIdx.x; t < 3 * per_part; t += blockDim.x) {
      const int part = t / per_part, r = t % per_part, j = r / (nh * wp), hl = h0 + r / wp % nh, e = r % wp;
      uint4 raw = make_uint4(0, 0, 0, 0);
      if (e * 8 < D) {
        raw = *reinterpret_cast<const uint4*>(src_row + (part * NH + j * HL + hl) * D + e * 8);
        if (cs && part < 2)
          rotate_pairs<4>(reinterpret_cast<bf16*>(&raw), cs, sn, static_cast<long>(l) * (D / 2) + e * 4);
      }
      *reinterpret_cast<uint4*>(w.base[j] + part * part_stride + ((static_cast<long>(b) * HL + hl) * ntot + g) * Dp +
                                e * 8) = raw;
    }
  }
  __threadfence_system();
}

// o [B, HL, ntot, Dp] (my heads, every token) -> the attention rows [B*nr_j, NH*D] of each
// token's owner j, at my heads' columns; only the (sample, head) pairs b * HL + hl in [p0, p1).
// Each thread moves independent 16-byte pieces (a token's heads are neighbours in its owner's
// row), so it has several loads in flight.
__global__ void ulysses_push_o_kernel(const uint4* o, ulysses_window w, int NH, int D, int p0, int p1) {
  const int wd = D / 8, wp = w.Dp / 8, HL = w.HL;
  const long ntot = w.nt + w.ni, step = static_cast<long>(gridDim.x) * blockDim.x;
  for (int b = 0; b < w.B; ++b) {
    const int h0 = max(p0 - b * HL, 0), nh = min(p1 - b * HL, HL) - h0;
    if (nh <= 0) continue;
    const long n = ntot * nh * wd;
#pragma unroll 4
    for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < n; i += step) {
      const long g = i / (nh * wd);
      const int hl = h0 + static_cast<int>(i / wd % nh), e = static_cast<int>(i % wd);
      int j;
      long l;
      locate(g, w.nt, w.ni, w.deg, j, l);
      const long nr = coll::shard_rows(w.nt, w.deg, j) + coll::shard_rows(w.ni, w.deg, j);
      reinterpret_cast<uint4*>(w.base[j] + 3 * w.qkv_elems())[((b * nr + l) * NH + w.me * HL + hl) * wd + e] =
          o[((static_cast<long>(b) * HL + hl) * ntot + g) * wp + e];
    }
  }
  __threadfence_system();
}

// Counter-based weights on the device (benchmarks): uniform(-scale, scale), bf16.
__global__ void generate_kernel(bf16* w, long count, unsigned long long stream, float scale) {
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<long>(gridDim.x) * blockDim.x) {
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

namespace {
// Threads per row and accesses per thread for a row of H (config.cpp caps H at 65536).
constexpr int kLnPerThread = 4;
int ln_threads(int H, int V) { return H <= 256 * V * kLnPerThread ? 256 : 1024; }

template <bool RESIDUAL>
void launch_ln(float* x, const bf16* y, const bf16* gate, int gate_stride, long rows, int H, int rows_per_sample,
               const bf16* mod, int mod_stride, int shift_off, int scale_off, bf16* out, cudaStream_t st) {
  const auto g = static_cast<unsigned>(rows);
  const int V = H % 4 == 0 ? 4 : 1, T = ln_threads(H, V), n = (H + T * V - 1) / (T * V);
#define GFDIT_LN(v, k)          \
  ln_mod_kernel<v, k, RESIDUAL> \
      <<<g, T, 0, st>>>(x, y, gate, gate_stride, H, rows_per_sample, mod, mod_stride, shift_off, scale_off, out)
  if (V == 4) {
    if (n <= kLnPerThread)
      GFDIT_LN(4, kLnPerThread);
    else
      GFDIT_LN(4, 16);
  } else {
    if (n <= kLnPerThread)
      GFDIT_LN(1, kLnPerThread);
    else if (n <= 16)
      GFDIT_LN(1, 16);
    else
      GFDIT_LN(1, 64);
  }
#undef GFDIT_LN
}
}  // namespace

void ln_mod(const float* x, long rows, int H, int rows_per_sample, const bf16* mod, int mod_stride, int shift_off,
            int scale_off, bf16* y, cudaStream_t st) {
  launch_ln<false>(const_cast<float*>(x), nullptr, nullptr, 0, rows, H, rows_per_sample, mod, mod_stride, shift_off,
                   scale_off, y, st);
}
void residual_ln_mod(float* x, const bf16* y, const bf16* gate, int gate_stride, long rows, int H, int rows_per_sample,
                     const bf16* mod, int mod_stride, int shift_off, int scale_off, bf16* out, cudaStream_t st) {
  launch_ln<true>(x, y, gate, gate_stride, rows, H, rows_per_sample, mod, mod_stride, shift_off, scale_off, out, st);
}
void split_rope(const bf16* qkv, bf16* q, bf16* k, bf16* v, const float* cs, const float* sn, int B, int nloc, int l0,
                int ntot, int NH, int D, int Dp, cudaStream_t st) {
  const auto g = static_cast<unsigned>(static_cast<long>(B) * nloc);
  if (D % 8 == 0 && Dp % 8 == 0)
    split_rope_kernel<8><<<g, 128, 0, st>>>(qkv, q, k, v, cs, sn, nloc, l0, ntot, NH, D, Dp);
  else if (D % 2 == 0)
    split_rope_kernel<2><<<g, 128, 0, st>>>(qkv, q, k, v, cs, sn, nloc, l0, ntot, NH, D, Dp);
  else
    split_rope_kernel<1>
        <<<g, 128, 0, st>>>(qkv, q, k, v, nullptr, nullptr, nloc, l0, ntot, NH, D, Dp);  // no RoPE: odd D
}
void merge_heads(const bf16* o, bf16* y, int B, int nloc, int l0, int ntot, int NH, int D, int Dp, cudaStream_t st) {
  const auto g = static_cast<unsigned>(static_cast<long>(B) * nloc);
  if (D % 8 == 0 && Dp % 8 == 0)
    merge_heads_kernel<8><<<g, 128, 0, st>>>(o, y, nloc, l0, ntot, NH, D, Dp);
  else
    merge_heads_kernel<1><<<g, 128, 0, st>>>(o, y, nloc, l0, ntot, NH, D, Dp);
}
void gelu(bf16* y, long total, cudaStream_t st) { gelu_kernel<<<grid_for(total), 256, 0, st>>>(y, total); }
void silu(bf16* y, long total, cudaStream_t st) { silu_kernel<<<grid_for(total), 256, 0, st>>>(y, total); }
void cond(const bf16* t, const float* extra, bf16* out, long total, cudaStream_t st) {
  cond_kernel<<<grid_for(total), 256, 0, st>>>(t, extra, out, total);
}
void assemble(float* x, const bf16* txt, const bf16* img, const float* pos, int B, int nt, int ni, int H,
              cudaStream_t st) {
  assemble_kernel<<<grid_for(static_cast<long>(B) * (nt + ni) * H), 256, 0, st>>>(x, txt, img, pos, B, nt, ni, H);
}
void naive_attention(const bf16* q, const bf16* k, const bf16* v, bf16* o, int BH, int n, int D, cudaStream_t st) {
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(BH));
  naive_attention_kernel<<<grid, 128, 2 * D * sizeof(float), st>>>(q, k, v, o, n, D,
                                                                   1.0f / sqrtf(static_cast<float>(D)));
}
void ulysses_pack_qkv(const bf16* qkv, const float* cs, const float* sn, bf16* send, int B, int nloc, int NH, int D,
                      int Dp, int HL, int R, int HC, int c, cudaStream_t st) {
  ulysses_pack_qkv_kernel<<<static_cast<unsigned>(static_cast<long>(B) * nloc), 128, 0, st>>>(
      qkv, cs, sn, send, nloc, NH, D, Dp, HL, R, HC, c, B);
}
void ulysses_unpack_qkv(const bf16* recv, bf16* q, bf16* k, bf16* v, int B, int HL, long nt, long ni, int deg, int R,
                        int Dp, cudaStream_t st) {
  ulysses_unpack_qkv_kernel<<<dim3(static_cast<unsigned>(nt + ni), static_cast<unsigned>(B)), 128, 0, st>>>(
      reinterpret_cast<const uint4*>(recv), reinterpret_cast<uint4*>(q), reinterpret_cast<uint4*>(k),
      reinterpret_cast<uint4*>(v), B, HL, nt, ni, deg, R, Dp);
}
void ulysses_pack_o(const bf16* o, bf16* send, int B, int HL, long nt, long ni, int deg, int R, int D, int Dp,
                    cudaStream_t st) {
  ulysses_pack_o_kernel<<<dim3(static_cast<unsigned>(nt + ni), static_cast<unsigned>(B)), 128, 0, st>>>(
      reinterpret_cast<const uint4*>(o), reinterpret_cast<uint4*>(send), B, HL, nt, ni, deg, R, D, Dp);
}
void ulysses_unpack_o(const bf16* recv, bf16* y, int B, int nloc, int NH, int HL, int D, int R, int HC, int c,
                      cudaStream_t st) {
  ulysses_unpack_o_kernel<<<static_cast<unsigned>(static_cast<long>(B) * nloc), 128, 0, st>>>(
      reinterpret_cast<const uint4*>(recv), reinterpret_cast<uint4*>(y), nloc, NH, HL, D, R, HC, c, B);
}
namespace {
// One block per row, or `blocks` walking the rows.
unsigned push_grid(long rows, int blocks) {
  return static_cast<unsigned>(blocks > 0 ? std::min<long>(blocks, rows) : rows);
}
}  // namespace
void ulysses_push_qkv(const bf16* qkv, const float* cs, const float* sn, const ulysses_window& w, int nloc, int NH,
                      int D, int p0, int p1, int blocks, cudaStream_t st) {
  ulysses_push_qkv_kernel<<<push_grid(static_cast<long>(w.B) * nloc, blocks), 128, 0, st>>>(qkv, cs, sn, w, nloc, NH, D,
                                                                                            p0, p1);
}
void ulysses_push_o(const bf16* o, const ulysses_window& w, int NH, int D, int p0, int p1, int blocks,
                    cudaStream_t st) {
  ulysses_push_o_kernel<<<push_grid(static_cast<long>(w.B) * (w.nt + w.ni), blocks), 128, 0, st>>>(
      reinterpret_cast<const uint4*>(o), w, NH, D, p0, p1);
}
void generate(bf16* w, long count, unsigned long long stream, float scale, cudaStream_t st) {
  generate_kernel<<<grid_for(count), 256, 0, st>>>(w, count, stream, scale);
}

}  // namespace gfdit::dit::gpu
