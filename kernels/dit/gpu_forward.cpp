#include "kernels/dit/gpu_forward.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kernels/attention/attention.hpp"
#include "kernels/collectives/types.hpp"
#include "common/gpu_check.hpp"
#include "kernels/dit/gpu_kernels.hpp"
#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

namespace {

using bf16 = gpu::bf16;

// Device memory owned for one call (host data staged for a GPU World's collectives).
struct device_bytes {
  void* p = nullptr;
  device_bytes() = default;
  device_bytes(const device_bytes&) = delete;
  device_bytes& operator=(const device_bytes&) = delete;
  ~device_bytes() { cudaFree(p); }
};

struct dev_linear {
  bf16* w = nullptr;
  bf16* b = nullptr;
  int out = 0, in = 0;
};
struct dev_block {
  dev_linear ada, qkv, proj, fc1, fc2;
};

}  // namespace

struct gpu_model::impl {
  model_config c;
  int device = 0;
  cudaStream_t st = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* ws = nullptr;
  std::size_t ws_bytes = std::size_t{32} << 20;
  std::vector<void*> allocs;
  dev_linear x_embed, t_fc1, t_fc2, txt, final_ada, final_linear;
  std::vector<dev_block> blocks;
  std::vector<float> y_table;  // host copy (class rows are gathered on the host)
  // Algorithm per (out, in): chosen once at a fixed reference row count, so the reduction
  // order of every output element is the same for any token count.
  std::map<std::tuple<int, int, bool>, cublasLtMatmulAlgo_t> algos;

  // Activation buffers for the current (B, n).
  int B = 0;
  std::int64_t n = 0;
  float *x = nullptr, *lse = nullptr, *cs = nullptr, *sn = nullptr, *pos = nullptr, *cextra = nullptr;
  bf16 *hn = nullptr, *qkv = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr, *attn = nullptr,
       *y = nullptr, *y2 = nullptr, *mod = nullptr, *silu_c = nullptr, *tin = nullptr, *tmid = nullptr, *tout = nullptr,
       *img_in = nullptr, *txt_in = nullptr, *img_e = nullptr, *txt_e = nullptr, *fmod = nullptr, *out = nullptr;
  std::vector<void*> act;
  // Stage boundaries of block() for profile_block (null: not profiling).
  std::vector<cudaEvent_t>* marks = nullptr;
  // Timing only: the per-rank compute of Ulysses at this degree on one GPU (GEMMs and
  // elementwise on n/degree rows, attention over all n tokens for heads/degree heads).
  int emu_degree = 1;
  // Real Ulysses (forward with a World, time_ulysses): my place in the group, my rows (text
  // shard then image shard, token_shard of each), R = the largest member's rows (segments are
  // padded to it), and the all-to-all buffers; deg 1 / no world otherwise.
  struct ulysses {
    coll::World* w = nullptr;
    coll::Group g;
    int deg = 1, HL = 0;
    int K = 1, HC = 0;  // head chunks of the pipeline and heads per chunk (HL = K * HC)
    std::int64_t nt = 0, ni = 0, nr = 0, R = 0;  // text, image tokens; my rows; the largest member's
    bf16 *send = nullptr, *recv = nullptr, *recv_o = nullptr;
    std::size_t seg_qkv = 0, seg_o = 0;  // bytes per peer and chunk of the two exchanges
    // Direct exchange: every member's window (gpu_kernels.hpp) in the group channel's symmetric
    // area; q/k/v and the attention rows are read from mine.
    bool direct = false;
    int first_pairs = 0, sms = 0;  // the partial wave's pairs (block_direct); the device's SMs
    gpu::ulysses_window win;
    bf16 *wq = nullptr, *wk = nullptr, *wv = nullptr, *wy = nullptr;
  } ul;
  gpu_model::ulysses_exchange exchange_req = gpu_model::ulysses_exchange::automatic;
  std::vector<void*> ul_allocs;
  // Chunks asked for (1: no pipeline) and what overlaps them: the exchanges run on `sc` (higher
  // priority, so its blocks are placed before queued attention blocks), forked from and joined
  // back to `st` by events every block, so the whole block stays one capturable stream.
  static constexpr int max_chunks = 8;
  int chunks_req = [] {  // GFDIT_DIT_ULYSSES_CHUNKS overrides the default 1 (tuning runs)
    const char* e = std::getenv("GFDIT_DIT_ULYSSES_CHUNKS");
    return e ? std::clamp(std::atoi(e), 1, max_chunks) : 1;
  }();
  // GFDIT_DIT_ULYSSES_OVERLAP=0 turns off what overlaps the attention's partial wave (the
  // pushes beside it; with 128-row attention blocks, its 64-row tail): the same bits, the peer
  // of a timing run.
  bool overlap_attention = [] {
    const char* e = std::getenv("GFDIT_DIT_ULYSSES_OVERLAP");
    return !(e && std::string(e) == "0");
  }();
  cudaStream_t sc = nullptr;
  cudaEvent_t ev_join = nullptr, ev_p[max_chunks] = {}, ev_q[max_chunks] = {},
              ev_a[max_chunks] = {};
  std::size_t mark_i = 0;
  void mark() {
    if (marks && mark_i < marks->size()) cudaEventRecord((*marks)[mark_i++], st);
  }

  ~impl() {
    if (st) cudaStreamSynchronize(st);
    if (sc) cudaStreamSynchronize(sc);
    if (ev_join) cudaEventDestroy(ev_join);
    for (int i = 0; i < max_chunks; ++i) {
      if (ev_p[i]) cudaEventDestroy(ev_p[i]);
      if (ev_q[i]) cudaEventDestroy(ev_q[i]);
      if (ev_a[i]) cudaEventDestroy(ev_a[i]);
    }
    if (sc) cudaStreamDestroy(sc);
    for (void* p : ul_allocs) cudaFree(p);
    for (void* p : act) cudaFree(p);
    for (void* p : allocs) cudaFree(p);
    if (ws) cudaFree(ws);
    if (lt) cublasLtDestroy(lt);
    if (st) cudaStreamDestroy(st);
  }

  template <class T>
  result<T*> alloc(std::size_t count, std::vector<void*>& into) {
    void* p = nullptr;
    GFDIT_CUDA(cudaMalloc(&p, std::max<std::size_t>(count, 1) * sizeof(T)));
    into.push_back(p);
    return static_cast<T*>(p);
  }

  result<void> init(const model_config& cfg, int dev) {
    c = cfg;
    device = dev;
    GFDIT_CUDA(cudaSetDevice(dev));
    GFDIT_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    int lo = 0, hi = 0;
    GFDIT_CUDA(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    GFDIT_CUDA(cudaStreamCreateWithPriority(&sc, cudaStreamNonBlocking, hi));
    GFDIT_CUDA(cudaEventCreateWithFlags(&ev_join, cudaEventDisableTiming));
    for (int i = 0; i < max_chunks; ++i) {
      GFDIT_CUDA(cudaEventCreateWithFlags(&ev_p[i], cudaEventDisableTiming));
      GFDIT_CUDA(cudaEventCreateWithFlags(&ev_q[i], cudaEventDisableTiming));
      GFDIT_CUDA(cudaEventCreateWithFlags(&ev_a[i], cudaEventDisableTiming));
    }
    GFDIT_CUBLAS(cublasLtCreate(&lt));
    GFDIT_CUDA(cudaMalloc(&ws, ws_bytes));
    return {};
  }

  result<dev_linear> linear_from(const std::vector<std::uint16_t>& w, const std::vector<std::uint16_t>& b) {
    dev_linear L;
    L.out = static_cast<int>(b.size());
    L.in = static_cast<int>(w.size() / b.size());
    auto pw = alloc<bf16>(w.size(), allocs);
    if (!pw) return pw.err();
    auto pb = alloc<bf16>(b.size(), allocs);
    if (!pb) return pb.err();
    L.w = *pw;
    L.b = *pb;
    GFDIT_CUDA(cudaMemcpy(L.w, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
    GFDIT_CUDA(cudaMemcpy(L.b, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
    return L;
  }

  result<dev_linear> linear_gen(int out, int in, std::uint64_t stream) {
    dev_linear L{nullptr, nullptr, out, in};
    auto pw = alloc<bf16>(static_cast<std::size_t>(out) * in, allocs);
    if (!pw) return pw.err();
    auto pb = alloc<bf16>(out, allocs);
    if (!pb) return pb.err();
    L.w = *pw;
    L.b = *pb;
    const long nw = static_cast<long>(out) * in;
    gpu::generate(L.w, nw, splitmix64(stream), std::sqrt(3.0f / in), st);
    gpu::generate(L.b, out, splitmix64(stream ^ 1), 0.02f, st);
    GFDIT_CUDA(cudaGetLastError());
    return L;
  }

  result<cublasLtMatmulAlgo_t> algo_for(int N, int K, bool gelu) {
    auto it = algos.find({N, K, gelu});
    if (it != algos.end()) return it->second;
    // The algorithm depends on the weight's shape and the model's token count only (never on
    // the rows of a call: a row's bits must not depend on how many rows run with it). Sized
    // for one sample's tokens, small models get tiles that fill the GPU; above 4096 rows the
    // choice for 4096 measured faster (mmdit-12b-standin and wan-like steps ~7% slower at their own count).
    const std::int64_t ref_rows = std::min<std::int64_t>(c.seq_tokens(), 4096);
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    GFDIT_CUBLAS(make_desc(&op, nullptr, gelu));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, K, N, K));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, K, ref_rows, K));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&d, CUDA_R_16BF, N, ref_rows, N));
    GFDIT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    GFDIT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof(ws_bytes)));
    cublasLtMatmulHeuristicResult_t res[8];
    int found = 0;
    const auto s = cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, d, d, pref, 8, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(op);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0)
      return make_error(errc::io, "dit gpu: no cuBLASLt algorithm for " + std::to_string(N) + "x" + std::to_string(K));
    cublasLtMatmulAlgo_t al = res[0].algo;
    // No split-K: a K split that depended on shape would change the summation order.
    int one = 1;
    cublasLtMatmulAlgoConfigSetAttribute(&al, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof(one));
    algos.emplace(std::make_tuple(N, K, gelu), al);
    return al;
  }

  cublasStatus_t make_desc(cublasLtMatmulDesc_t* op, const bf16* bias, bool gelu = false) {
    auto s = cublasLtMatmulDescCreate(op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
    const cublasLtEpilogue_t ep = gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    s = cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep));
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (bias) s = cublasLtMatmulDescSetAttribute(*op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
    return s;
  }

  // Y[M, out] = X[M, in] W^T + b (then tanh-GELU in the epilogue), bf16 in and out, fp32 accumulation.
  result<void> gemm(const dev_linear& L, const bf16* X, std::int64_t M, bf16* Y, bool gelu = false) {
    auto al = algo_for(L.out, L.in, gelu);
    if (!al) return al.err();
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    GFDIT_CUBLAS(make_desc(&op, L.b, gelu));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, L.in, L.out, L.in));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, L.in, M, L.in));
    GFDIT_CUBLAS(cublasLtMatrixLayoutCreate(&d, CUDA_R_16BF, L.out, M, L.out));
    const float alpha = 1.0f, beta = 0.0f;
    const auto s = cublasLtMatmul(lt, op, &alpha, L.w, a, X, b, &beta, Y, d, Y, d, &*al, ws, ws_bytes, st);
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(d);
    cublasLtMatmulDescDestroy(op);
    GFDIT_CUBLAS(s);
    return {};
  }

  result<void> ensure_buffers(int batch, std::int64_t tokens) {
    if (batch == B && tokens == n) return {};
    GFDIT_CUDA(cudaStreamSynchronize(st));
    for (void* p : act) cudaFree(p);
    act.clear();
    B = batch;
    n = tokens;
    const std::size_t M = static_cast<std::size_t>(B) * n, H = c.hidden, Mlp = H * c.mlp_ratio;
    const std::size_t NH = c.heads, D = c.head_dim();
#define GFDIT_DIT_ALLOC(ptr, T, count)       \
  {                                          \
    auto r_ = alloc<T>((count), act);        \
    if (!r_) return r_.err();                \
    ptr = *r_;                               \
  }
    GFDIT_DIT_ALLOC(x, float, M * H);
    GFDIT_DIT_ALLOC(hn, bf16, M * H);
    GFDIT_DIT_ALLOC(qkv, bf16, M * 3 * H);
    const std::size_t QK = M * NH * padded_head_dim();
    GFDIT_DIT_ALLOC(q, bf16, QK);
    GFDIT_DIT_ALLOC(k, bf16, QK);
    GFDIT_DIT_ALLOC(v, bf16, QK);
    GFDIT_DIT_ALLOC(o, bf16, QK);
    // The padding columns stay zero for good: q.k and p.v gain exact zeros only.
    GFDIT_CUDA(cudaMemsetAsync(q, 0, QK * sizeof(bf16), st));
    GFDIT_CUDA(cudaMemsetAsync(k, 0, QK * sizeof(bf16), st));
    GFDIT_CUDA(cudaMemsetAsync(v, 0, QK * sizeof(bf16), st));
    GFDIT_DIT_ALLOC(lse, float, M * NH);
    GFDIT_DIT_ALLOC(attn, bf16, M * H);
    GFDIT_DIT_ALLOC(y, bf16, M * Mlp);
    GFDIT_DIT_ALLOC(y2, bf16, M * H);
    GFDIT_DIT_ALLOC(mod, bf16, static_cast<std::size_t>(B) * 6 * H * c.depth);
    GFDIT_DIT_ALLOC(fmod, bf16, static_cast<std::size_t>(B) * 2 * H);
    GFDIT_DIT_ALLOC(silu_c, bf16, static_cast<std::size_t>(B) * H);
    GFDIT_DIT_ALLOC(cs, float, static_cast<std::size_t>(n) * D / 2);
    GFDIT_DIT_ALLOC(sn, float, static_cast<std::size_t>(n) * D / 2);
    GFDIT_DIT_ALLOC(out, bf16, M * c.patch_dim());
#undef GFDIT_DIT_ALLOC
    (void)NH;
    return {};
  }

  // Head sizes the tensor-core attention takes: 64 and 128; others are zero-padded up to one.
  int padded_head_dim() const { return c.head_dim() <= 64 ? 64 : c.head_dim() <= 128 ? 128 : c.head_dim(); }

  // Attention of B x heads heads over all n tokens, [B, heads, n, Dp] starting at element `off`
  // of q, k, v and o (a head chunk's block under Ulysses).
  result<void> attention_fwd(int heads, std::size_t off = 0) { return attention_on(q, k, v, heads, off); }
  attention::problem attention_problem(int heads) const {
    attention::problem p;
    p.batch = B;
    p.heads = heads;
    p.seqlen = static_cast<int>(n);
    p.head_dim = padded_head_dim();
    p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim()));  // of the real head size
    return p;
  }
  // Into o (+off): q/k/v [B, heads, n, Dp] at qp/kp/vp (+off); the (sample, head) pairs in
  // [pair_begin, pair_end) (-1: all) where the tensor-core kernel runs, else all of them.
  result<void> attention_on(const bf16* qp, const bf16* kp, const bf16* vp, int heads, std::size_t off = 0,
                            int pair_begin = 0, int pair_end = -1) {
    const int D = padded_head_dim();
    if (D == 64 || D == 128) {
      attention::forward_args a;
      a.q = qp + off; a.k = kp + off; a.v = vp + off; a.o = o + off; a.lse = lse + off / D;
      a.pair_begin = pair_begin;
      a.pair_end = pair_end;
      a.split_tail = overlap_attention;
      return attention::forward(attention_problem(heads), a, st);
    }
    if (pair_begin > 0) return {};  // the first call did every pair
    gpu::naive_attention(qp + off, kp + off, vp + off, o + off, B * heads, static_cast<int>(n), D, st);
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  // The norm after block blk: the next block's first (shift 0, scale H of its 6H rows) or the
  // final layer's (fmod, 2H rows). A block's last residual computes it (residual_ln_mod), so a
  // block starts with its norm only when it is the first one run (`first`).
  struct next_norm {
    const bf16* mod;  // sample 0's row
    int stride;
  };
  next_norm norm_after(int blk) const {
    if (blk + 1 < c.depth) return {mod + static_cast<std::size_t>(blk + 1) * B * 6 * c.hidden, 6 * c.hidden};
    return {fmod, 2 * c.hidden};
  }

  // One block on x (mods for the block already in mod + blk*B*6H); rope tables optional.
  result<void> block(int blk, bool rope, bool first) {
    const dev_block& W = blocks[static_cast<std::size_t>(blk)];
    const int H = c.hidden, NH = c.heads, D = c.head_dim();
    const std::int64_t nl = n / emu_degree;  // rows this rank owns
    const std::int64_t M = static_cast<std::int64_t>(B) * nl;
    const bf16* md = mod + static_cast<std::size_t>(blk) * B * 6 * H;
    mark_i = 0;
    mark();
    if (first) {
      gpu::ln_mod(x, M, H, static_cast<int>(nl), md, 6 * H, 0, H, hn, st);
      mark();
    }
    if (auto r = gemm(W.qkv, hn, M, qkv); !r) return r;
    mark();
    gpu::split_rope(qkv, q, k, v, rope ? cs : nullptr, rope ? sn : nullptr, B, static_cast<int>(nl), 0, static_cast<int>(nl), NH, D, padded_head_dim(), st);
    mark();
    if (auto r = attention_fwd(NH / emu_degree); !r) return r;
    mark();
    gpu::merge_heads(o, attn, B, static_cast<int>(nl), 0, static_cast<int>(nl), NH, D, padded_head_dim(), st);
    mark();
    return after_attention(blk, md, M, nl, attn);
  }

  // Projection of attn, gated residual, then the MLP half, on M rows (nl per sample), ending
  // with the norm after the block.
  // From the attention rows a_in [M, NH*D] (attn, or the direct exchange's window).
  result<void> after_attention(int blk, const bf16* md, std::int64_t M, std::int64_t nl, const bf16* a_in) {
    const dev_block& W = blocks[static_cast<std::size_t>(blk)];
    const int H = c.hidden;
    if (auto r = gemm(W.proj, a_in, M, y2); !r) return r;
    mark();
    gpu::residual_ln_mod(x, y2, md + 2 * H, 6 * H, M, H, static_cast<int>(nl), md, 6 * H, 3 * H, 4 * H, hn, st);
    mark();
    if (auto r = gemm(W.fc1, hn, M, y, true); !r) return r;
    mark();
    if (auto r = gemm(W.fc2, y, M, y2); !r) return r;
    mark();
    const next_norm nx = norm_after(blk);
    gpu::residual_ln_mod(x, y2, md + 5 * H, 6 * H, M, H, static_cast<int>(nl), nx.mod, nx.stride, 0, H, hn, st);
    mark();
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  // What `shards` Ulysses ranks compute, on one GPU: every row-wise stage (norms, GEMMs,
  // residuals) runs per token shard with that shard's row count, attention per head group over
  // all tokens. The all-to-all is the identity here (one memory), so the bits must equal block().
  result<void> block_sharded(int blk, bool rope, bool first, int shards) {
    const dev_block& W = blocks[static_cast<std::size_t>(blk)];
    const int H = c.hidden, NH = c.heads, D = c.head_dim(), Dp = padded_head_dim(), HL = NH / shards;
    const int Mlp = H * c.mlp_ratio;
    const std::size_t per_sample = static_cast<std::size_t>(NH) * n * Dp;
    for (int b = 0; b < B; ++b)
      for (int s = 0; s < shards; ++s) {
        const std::int64_t l0 = coll::shard_begin(n, shards, s), cnt = coll::shard_rows(n, shards, s), r0 = b * n + l0;
        const bf16* md = mod + (static_cast<std::size_t>(blk) * B + b) * 6 * H;
        if (first) gpu::ln_mod(x + r0 * H, cnt, H, static_cast<int>(cnt), md, 6 * H, 0, H, hn + r0 * H, st);
        if (auto r = gemm(W.qkv, hn + r0 * H, cnt, qkv + r0 * 3 * H); !r) return r;
        gpu::split_rope(qkv + r0 * 3 * H, q + b * per_sample, k + b * per_sample, v + b * per_sample, rope ? cs : nullptr,
                        rope ? sn : nullptr, 1, static_cast<int>(cnt), static_cast<int>(l0), static_cast<int>(n), NH, D, Dp, st);
      }
    for (int b = 0; b < B; ++b)
      for (int s = 0; s < shards; ++s) {
        const std::size_t off = b * per_sample + static_cast<std::size_t>(s) * HL * n * Dp;
        if (Dp == 64 || Dp == 128) {
          attention::problem p;
          p.heads = HL;
          p.seqlen = static_cast<int>(n);
          p.head_dim = Dp;
          p.scale = 1.0f / std::sqrt(static_cast<float>(D));
          attention::forward_args a;
          a.q = q + off; a.k = k + off; a.v = v + off; a.o = o + off; a.lse = lse;
          if (auto r = attention::forward(p, a, st); !r) return r;
        } else {
          gpu::naive_attention(q + off, k + off, v + off, o + off, HL, static_cast<int>(n), D, st);
        }
      }
    for (int b = 0; b < B; ++b)
      for (int s = 0; s < shards; ++s) {
        const std::int64_t l0 = coll::shard_begin(n, shards, s), cnt = coll::shard_rows(n, shards, s), r0 = b * n + l0;
        const bf16* md = mod + (static_cast<std::size_t>(blk) * B + b) * 6 * H;
        gpu::merge_heads(o + b * per_sample, attn + r0 * H, 1, static_cast<int>(cnt), static_cast<int>(l0), static_cast<int>(n), NH, D, Dp, st);
        if (auto r = gemm(W.proj, attn + r0 * H, cnt, y2 + r0 * H); !r) return r;
        gpu::residual_ln_mod(x + r0 * H, y2 + r0 * H, md + 2 * H, 6 * H, cnt, H, static_cast<int>(cnt), md, 6 * H, 3 * H, 4 * H,
                             hn + r0 * H, st);
        if (auto r = gemm(W.fc1, hn + r0 * H, cnt, y + r0 * Mlp, true); !r) return r;
        if (auto r = gemm(W.fc2, y + r0 * Mlp, cnt, y2 + r0 * H); !r) return r;
        const next_norm nx = norm_after(blk);
        gpu::residual_ln_mod(x + r0 * H, y2 + r0 * H, md + 5 * H, 6 * H, cnt, H, static_cast<int>(cnt),
                             nx.mod + static_cast<std::size_t>(b) * nx.stride, nx.stride, 0, H, hn + r0 * H, st);
      }
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  // Checks the group and sets up `ul` for (batch, the model's tokens); buffers for the two
  // all-to-alls. The send buffer is the channel's symmetric area when it fits (no staging copy).
  result<void> ulysses_begin(const sp_group& g, int batch) {
    const int deg = g.degree(), me = g.index();
    if (g.world->kind() == coll::backend_kind::host)
      return make_error(errc::invalid_argument, "dit gpu ulysses: the World must have a GPU backend (device buffers)");
    if (me < 0) return make_error(errc::invalid_argument, "dit gpu ulysses: this rank is not a member of the group");
    if (c.heads % deg != 0)
      return make_error(errc::invalid_argument, "dit gpu ulysses: Ulysses degree " + std::to_string(deg) +
                                                    " does not divide the head count " + std::to_string(c.heads));
    if (c.head_dim() % 8 != 0) return make_error(errc::invalid_argument, "dit gpu ulysses: head size must be a multiple of 8");
    const std::int64_t nt = c.cond == conditioning::text ? c.text_tokens : 0, ni = c.image_tokens();
    if (ni < deg) return make_error(errc::invalid_argument, "dit gpu ulysses: fewer image tokens than ranks");
    ulysses_end();
    ul.w = g.world;
    ul.g = g.group;
    ul.deg = deg;
    ul.HL = c.heads / deg;
    ul.nt = nt;
    ul.ni = ni;
    ul.nr = token_shard(nt, deg, me).count + token_shard(ni, deg, me).count;
    ul.R = token_shard(nt, deg, 0).count + token_shard(ni, deg, 0).count;
    if (exchange_req != gpu_model::ulysses_exchange::all_to_all) {
      if (begin_direct(batch)) return ul.w->barrier(ul.g, coll::stream_ref{st});
      if (exchange_req == gpu_model::ulysses_exchange::direct)
        return make_error(errc::invalid_argument,
                          "dit gpu ulysses: the direct exchange needs a cuda-ipc World whose buffer_bytes holds " +
                              std::to_string(direct_bytes(batch)) + " bytes (q/k/v of my heads and my attention rows)");
    }
    // Head chunks: the requested count when it divides my heads, else 1. Not on by default:
    // 2 chunks gained 1-2% in CUDA graphs on 2xH200 but cost ~10% eagerly for wan-like (the
    // serving path's forward runs eagerly); 3 and 4 were slower everywhere.
    ul.K = ul.HL % chunks_req == 0 ? chunks_req : 1;
    ul.HC = ul.HL / ul.K;
    ul.seg_qkv = static_cast<std::size_t>(3) * batch * ul.HC * ul.R * padded_head_dim() * sizeof(bf16);
    ul.seg_o = static_cast<std::size_t>(batch) * ul.R * ul.HC * c.head_dim() * sizeof(bf16);
    // Chunk j's q/k/v exchange uses [j * deg * seg_qkv, +deg * seg_qkv) of send and recv; its
    // outputs go out from the same part of send (free again once its q/k/v left) into recv_o.
    const std::size_t bytes = static_cast<std::size_t>(ul.K) * deg * ul.seg_qkv;
    void* sym = ul.w->symmetric(ul.g.channel());
    if (sym && bytes <= ul.w->options().buffer_bytes) {
      ul.send = static_cast<bf16*>(sym);
    } else {
      auto s2 = alloc<bf16>(bytes / sizeof(bf16), ul_allocs);
      if (!s2) return s2.err();
      ul.send = *s2;
    }
    const std::size_t bytes_o = static_cast<std::size_t>(ul.K) * deg * ul.seg_o;
    auto r2 = alloc<bf16>((bytes + bytes_o) / sizeof(bf16), ul_allocs);
    if (!r2) return r2.err();
    ul.recv = *r2;
    ul.recv_o = *r2 + bytes / sizeof(bf16);
    return {};
  }
  // The direct exchange when every member's window is mapped here and fits the symmetric area;
  // a barrier then orders it after whatever used the areas before (my earlier reads of my own).
  gpu::ulysses_window window(int batch) const {
    gpu::ulysses_window w;
    w.deg = ul.deg, w.me = ul.g.self(), w.B = batch, w.HL = ul.HL, w.Dp = padded_head_dim(), w.nt = ul.nt, w.ni = ul.ni;
    return w;
  }
  std::size_t direct_bytes(int batch) const {
    return (3 * static_cast<std::size_t>(window(batch).qkv_elems()) + static_cast<std::size_t>(batch) * ul.R * c.hidden) * sizeof(bf16);
  }
  bool begin_direct(int batch) {
    gpu::ulysses_window w = window(batch);
    if (ul.deg > gpu::max_ulysses_degree || direct_bytes(batch) > ul.w->options().buffer_bytes) return false;
    for (int j = 0; j < ul.deg; ++j)
      if (!(w.base[j] = static_cast<bf16*>(ul.w->peer_symmetric(ul.g.channel(), ul.g.member(j))))) return false;
    ul.direct = true;
    ul.win = w;
    ul.wq = w.base[w.me];
    ul.wk = ul.wq + w.qkv_elems();
    ul.wv = ul.wk + w.qkv_elems();
    ul.wy = ul.wv + w.qkv_elems();
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&ul.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      ul.sms = 0;
    if (overlap_attention && ul.sms > 0 && padded_head_dim() <= 128) {  // the tensor-core attention
      attention::problem p = attention_problem(ul.HL);
      p.batch = batch;
      const int pairs = batch * ul.HL, whole = attention::forward_whole_wave_pairs(p);
      if (whole > 0 && whole < pairs) ul.first_pairs = pairs - whole;
    }
    return true;
  }
  void ulysses_end() {
    if (!ul_allocs.empty()) cudaStreamSynchronize(st);
    for (void* p : ul_allocs) cudaFree(p);
    ul_allocs.clear();
    ul = ulysses{};
  }

  // One block as a Ulysses rank: row-wise stages on my nr rows, all-to-all to [my heads x all
  // tokens], attention (batch B, HL heads, all tokens: per (head, query) the same work as at
  // degree 1), all-to-all back. Buffers sized for all tokens (ensure_buffers(B, N)).
  // Pipelined over K head chunks: chunk j+1's q/k/v exchange and chunk j-1's output exchange
  // (stream sc) run while chunk j's attention runs (stream st). Each chunk's attention is the
  // degree-1 work of its heads, so the bits do not depend on K. Every rank issues the same
  // exchanges in the same order on the group's channel (q0 q1 o0 q2 o1 .. o(K-1)), all on sc.
  result<void> block_ulysses(int blk, bool rope, bool first) {
    if (ul.direct) return block_direct(blk, rope, first);
    const dev_block& W = blocks[static_cast<std::size_t>(blk)];
    const int H = c.hidden, NH = c.heads, D = c.head_dim(), Dp = padded_head_dim(), HL = ul.HL, K = ul.K, HC = ul.HC;
    const int nr = static_cast<int>(ul.nr), R = static_cast<int>(ul.R);
    const std::int64_t M = static_cast<std::int64_t>(B) * nr;
    const bf16* md = mod + static_cast<std::size_t>(blk) * B * 6 * H;
    const cudaStream_t cs_ = K > 1 ? sc : st;  // one chunk: everything on st, as before
    const coll::stream_ref sr{cs_};
    const std::size_t cq = static_cast<std::size_t>(ul.deg) * ul.seg_qkv / sizeof(bf16);  // elements per chunk
    const std::size_t co = static_cast<std::size_t>(ul.deg) * ul.seg_o / sizeof(bf16);
    const std::size_t ca = static_cast<std::size_t>(B) * HC * n * Dp;  // of q/k/v/o per chunk
    if (first) gpu::ln_mod(x, M, H, nr, md, 6 * H, 0, H, hn, st);
    if (auto r = gemm(W.qkv, hn, M, qkv); !r) return r;
    // Packing runs on st, chunk by chunk, so chunk j's exchange starts while j+1 packs; sc
    // then only launches exchanges and unpacks. An exchange kernel wants all its blocks resident
    // at once, so it is issued on the high-priority sc the moment its input is ready: its blocks
    // are placed before the attention blocks that become ready at the same time.
    for (int j = 0; j < K; ++j) {
      gpu::ulysses_pack_qkv(qkv, rope ? cs : nullptr, rope ? sn : nullptr, ul.send + j * cq, B, nr, NH, D, Dp, HL, R, HC, j, st);
      GFDIT_CUDA(cudaGetLastError());
      GFDIT_CUDA(cudaEventRecord(ev_p[j], st));
    }
    auto exchange_qkv = [&](int j) -> result<void> {
      GFDIT_CUDA(cudaStreamWaitEvent(cs_, ev_p[j], 0));
      if (auto r = ul.w->all_to_all(ul.g, ul.send + j * cq, ul.recv + j * cq, ul.seg_qkv, sr); !r) return r;
      gpu::ulysses_unpack_qkv(ul.recv + j * cq, q + j * ca, k + j * ca, v + j * ca, B, HC, ul.nt, ul.ni, ul.deg, R, Dp, cs_);
      GFDIT_CUDA(cudaEventRecord(ev_q[j], cs_));
      return {};
    };
    auto exchange_o = [&](int j) -> result<void> {
      GFDIT_CUDA(cudaStreamWaitEvent(cs_, ev_a[j], 0));
      if (auto r = ul.w->all_to_all(ul.g, ul.send + j * cq, ul.recv_o + j * co, ul.seg_o, sr); !r) return r;
      gpu::ulysses_unpack_o(ul.recv_o + j * co, attn, B, nr, NH, HL, D, R, HC, j, cs_);
      GFDIT_CUDA(cudaGetLastError());
      return {};
    };
    if (auto r = exchange_qkv(0); !r) return r;
    for (int j = 0; j < K; ++j) {
      // Issue order on sc: the next chunk's q/k/v before this chunk's outputs, so they overlap
      // this chunk's attention.
      if (j + 1 < K)
        if (auto r = exchange_qkv(j + 1); !r) return r;
      GFDIT_CUDA(cudaStreamWaitEvent(st, ev_q[j], 0));
      if (auto r = attention_fwd(HC, j * ca); !r) return r;
      gpu::ulysses_pack_o(o + j * ca, ul.send + j * cq, B, HC, ul.nt, ul.ni, ul.deg, R, D, Dp, st);
      GFDIT_CUDA(cudaEventRecord(ev_a[j], st));
      if (auto r = exchange_o(j); !r) return r;
    }
    if (K > 1) {
      GFDIT_CUDA(cudaEventRecord(ev_join, sc));
      GFDIT_CUDA(cudaStreamWaitEvent(st, ev_join, 0));
    }
    return after_attention(blk, md, M, nr, attn);
  }

  // One block as a Ulysses rank with the direct exchange: the q/k/v push writes my tokens of
  // every head straight into the head's owner's window; after a barrier, attention over my
  // window; the output push writes my heads of every token into the token's owner's attention
  // rows; after a second barrier, the projection reads mine. The barrier after the output push
  // also tells each peer that I have finished reading my window's q/k/v, so its next push may
  // overwrite them (and my attention rows are not written again before my next q/k/v push).
  // When the attention's (sample, head) pairs do not fill whole waves, the pairs of the partial
  // wave go first (ul.first_pairs): their q/k/v are pushed and barriered alone, and while their
  // attention runs (on SMs it leaves idle) the rest is pushed and barriered on sc; their outputs
  // go out on sc while the whole waves run.
  result<void> block_direct(int blk, bool rope, bool first) {
    const dev_block& W = blocks[static_cast<std::size_t>(blk)];
    const int H = c.hidden, NH = c.heads, D = c.head_dim();
    const int nr = static_cast<int>(ul.nr);
    const std::int64_t M = static_cast<std::int64_t>(B) * nr;
    const bf16* md = mod + static_cast<std::size_t>(blk) * B * 6 * H;
    const float *rc = rope ? cs : nullptr, *rs = rope ? sn : nullptr;
    const int P = B * ul.HL, f = ul.first_pairs;  // f > 0: pairs [0, f) first
    const coll::stream_ref sr{st};
    mark_i = 0;
    mark();
    if (first) {
      gpu::ln_mod(x, M, H, nr, md, 6 * H, 0, H, hn, st);
      mark();
    }
    if (auto r = gemm(W.qkv, hn, M, qkv); !r) return r;
    mark();
    gpu::ulysses_push_qkv(qkv, rc, rs, ul.win, nr, NH, D, 0, f > 0 ? f : P, 0, st);
    GFDIT_CUDA(cudaGetLastError());
    mark();
    if (auto r = ul.w->barrier(ul.g, sr); !r) return r;
    mark();
    if (f > 0) {
      GFDIT_CUDA(cudaEventRecord(ev_a[0], st));
      GFDIT_CUDA(cudaStreamWaitEvent(sc, ev_a[0], 0));
      // A few blocks per SM: room stays for the attention blocks beside them.
      gpu::ulysses_push_qkv(qkv, rc, rs, ul.win, nr, NH, D, f, P, 4 * ul.sms, sc);
      GFDIT_CUDA(cudaGetLastError());
      if (auto r = ul.w->barrier(ul.g, coll::stream_ref{sc}); !r) return r;
      GFDIT_CUDA(cudaEventRecord(ev_a[1], sc));
      if (auto r = attention_on(ul.wq, ul.wk, ul.wv, ul.HL, 0, 0, f); !r) return r;
      GFDIT_CUDA(cudaEventRecord(ev_a[2], st));
      GFDIT_CUDA(cudaStreamWaitEvent(sc, ev_a[2], 0));
      gpu::ulysses_push_o(o, ul.win, NH, D, 0, f, 4 * ul.sms, sc);
      GFDIT_CUDA(cudaGetLastError());
      GFDIT_CUDA(cudaEventRecord(ev_join, sc));
      GFDIT_CUDA(cudaStreamWaitEvent(st, ev_a[1], 0));
    }
    if (auto r = attention_on(ul.wq, ul.wk, ul.wv, ul.HL, 0, f, P); !r) return r;
    mark();
    gpu::ulysses_push_o(o, ul.win, NH, D, f, P, 8 * ul.sms, st);  // 0 (a block per token) when sms is unknown
    GFDIT_CUDA(cudaGetLastError());
    if (f > 0) GFDIT_CUDA(cudaStreamWaitEvent(st, ev_join, 0));
    mark();
    if (auto r = ul.w->barrier(ul.g, sr); !r) return r;
    mark();
    return after_attention(blk, md, M, nr, ul.wy);
  }

  result<void> final_layer_sharded(int shards) {  // its norm: as final_layer
    const int H = c.hidden, P = c.patch_dim();
    for (int b = 0; b < B; ++b)
      for (int s = 0; s < shards; ++s) {
        const std::int64_t l0 = coll::shard_begin(n, shards, s), cnt = coll::shard_rows(n, shards, s), r0 = b * n + l0;
        if (auto r = gemm(final_linear, hn + r0 * H, cnt, out + r0 * P); !r) return r;
      }
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  // The final layer's norm was computed by the last block (norm_after).
  result<void> final_layer(std::int64_t nl) {
    const std::int64_t M = static_cast<std::int64_t>(B) * nl;
    if (auto r = gemm(final_linear, hn, M, out); !r) return r;
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  // Modulations of every block and the final layer from silu_c.
  result<void> modulations() {
    for (int blk = 0; blk < c.depth; ++blk)
      if (auto r = gemm(blocks[static_cast<std::size_t>(blk)].ada, silu_c, B, mod + static_cast<std::size_t>(blk) * B * 6 * c.hidden); !r) return r;
    return gemm(final_ada, silu_c, B, fmod);
  }

  result<gpu_timing> time(int batch, std::int64_t tokens, int iters, bool whole_step) {
    if (auto r = ensure_buffers(batch, tokens); !r) return r.err();
    const std::size_t M = static_cast<std::size_t>(B) * n;
    const coll::stream_ref sr{st};
    gpu::generate(hn, static_cast<long>(M * c.hidden), 77, 1.0f, st);
    gpu::generate(silu_c, static_cast<long>(B) * c.hidden, 78, 1.0f, st);
    GFDIT_CUDA(cudaGetLastError());
    if (auto r = modulations(); !r) return r.err();
    // One block alone is timed as it runs inside a step: its first norm is the previous block's
    // (fused into that block's last residual), and it ends with the next block's.
    auto launch = [&]() -> result<void> {
      const int nblk = whole_step ? c.depth : 1;
      const bool rope = c.pos == positional::rope;
      for (int b = 0; b < nblk; ++b) {
        const bool first = whole_step && b == 0;
        if (auto r = ul.w ? block_ulysses(b, rope, first) : block(b, rope, first); !r) return r;
      }
      return whole_step ? final_layer(ul.w ? ul.nr : n / emu_degree) : result<void>{};
    };
    // Ulysses ranks start every timed iteration together (a barrier before the first event).
    auto line_up = [&]() -> result<void> { return ul.w ? ul.w->barrier(ul.g, sr) : result<void>{}; };
    auto reset = [&]() { cudaMemsetAsync(x, 0, M * c.hidden * sizeof(float), st); };
    // Warm-up also chooses the GEMM algorithms outside any capture.
    reset();
    if (auto r = launch(); !r) return r.err();
    GFDIT_CUDA(cudaStreamSynchronize(st));
    cudaEvent_t e0, e1;
    GFDIT_CUDA(cudaEventCreate(&e0));
    GFDIT_CUDA(cudaEventCreate(&e1));
    std::vector<float> eager, graph;
    for (int i = 0; i < iters; ++i) {
      if (auto r = line_up(); !r) return r.err();
      GFDIT_CUDA(cudaEventRecord(e0, st));
      if (auto r = launch(); !r) return r.err();
      GFDIT_CUDA(cudaEventRecord(e1, st));
      GFDIT_CUDA(cudaEventSynchronize(e1));
      float ms = 0;
      GFDIT_CUDA(cudaEventElapsedTime(&ms, e0, e1));
      eager.push_back(ms);
    }
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    GFDIT_CUDA(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    auto captured = launch();
    const auto end = cudaStreamEndCapture(st, &g);
    if (!captured) return captured.err();
    GFDIT_CUDA(end);
    // Node priorities (copied from the streams at capture): the Ulysses exchanges keep sc's.
    GFDIT_CUDA(cudaGraphInstantiate(&ge, g, cudaGraphInstantiateFlagUseNodePriority));
    GFDIT_CUDA(cudaGraphLaunch(ge, st));
    GFDIT_CUDA(cudaStreamSynchronize(st));
    for (int i = 0; i < iters; ++i) {
      if (auto r = line_up(); !r) return r.err();
      GFDIT_CUDA(cudaEventRecord(e0, st));
      GFDIT_CUDA(cudaGraphLaunch(ge, st));
      GFDIT_CUDA(cudaEventRecord(e1, st));
      GFDIT_CUDA(cudaEventSynchronize(e1));
      float ms = 0;
      GFDIT_CUDA(cudaEventElapsedTime(&ms, e0, e1));
      graph.push_back(ms);
    }
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (ul.w)
      if (auto r = ul.w->synchronize(sr); !r) return r.err();  // a peer that never came
    std::sort(eager.begin(), eager.end());
    std::sort(graph.begin(), graph.end());
    return gpu_timing{eager[eager.size() / 2], graph[graph.size() / 2]};
  }
};

result<std::vector<std::pair<std::string, double>>> gpu_model::profile_block(int batch, std::int64_t tokens, int iters,
                                                                             const sp_group& g) {
  impl& p = *impl_;
  static const std::vector<const char*> one_gpu = {"ln_mod1", "qkv_gemm", "split_rope", "attention", "merge_heads", "proj_gemm",
                                                   "residual1_ln_mod2", "fc1_gelu_gemm", "fc2_gemm", "residual2_ln_next"};
  static const std::vector<const char*> direct = {"ln_mod1", "qkv_gemm", "push_qkv", "barrier", "attention", "push_o",
                                                  "barrier", "proj_gemm", "residual1_ln_mod2", "fc1_gelu_gemm", "fc2_gemm",
                                                  "residual2_ln_next"};
  if (g.world) {
    tokens = p.c.seq_tokens();
    if (auto r = p.ensure_buffers(batch, tokens); !r) return r.err();
    if (auto r = p.ulysses_begin(g, batch); !r) return r.err();
    if (!p.ul.direct) {
      p.ulysses_end();
      return make_error(errc::invalid_argument, "dit gpu profile_block: Ulysses stages are marked for the direct exchange only");
    }
  }
  struct end_ulysses {  // every return below
    impl& p;
    ~end_ulysses() { p.ulysses_end(); }
  } guard{p};
  const auto& names = g.world ? direct : one_gpu;
  const std::size_t stages = names.size();
  if (auto r = p.time(batch, tokens, 2, false); !r) return r.err();  // buffers, algorithms, warm-up
  std::vector<cudaEvent_t> ev(stages + 1);
  for (auto& e : ev) GFDIT_CUDA(cudaEventCreate(&e));
  std::vector<std::vector<float>> t(stages);
  p.marks = &ev;
  for (int i = 0; i < iters; ++i) {
    if (g.world)  // the members start together, as in time_ulysses
      if (auto r = g.world->barrier(g.group, coll::stream_ref{p.st}); !r) { p.marks = nullptr; return r.err(); }
    auto r = g.world ? p.block_ulysses(0, p.c.pos == positional::rope, true) : p.block(0, p.c.pos == positional::rope, true);
    if (!r) { p.marks = nullptr; return r.err(); }
    GFDIT_CUDA(cudaEventSynchronize(ev.back()));
    for (std::size_t s = 0; s < stages; ++s) {
      float ms = 0;
      GFDIT_CUDA(cudaEventElapsedTime(&ms, ev[s], ev[s + 1]));
      t[s].push_back(ms);
    }
  }
  p.marks = nullptr;
  for (auto& e : ev) cudaEventDestroy(e);
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t s = 0; s < stages; ++s) {
    std::sort(t[s].begin(), t[s].end());
    out.emplace_back(names[s], t[s][t[s].size() / 2]);
  }
  return out;
}

bool gpu_available() noexcept {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

gpu_model::gpu_model(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
gpu_model::~gpu_model() = default;

result<std::unique_ptr<gpu_model>> gpu_model::upload(const model& m, int device) {
  if (!gpu_available()) return make_error(errc::not_found, "dit gpu: no CUDA device");
  auto p = std::make_unique<impl>();
  if (auto r = p->init(m.config(), device); !r) return r.err();
  const auto& t = m.tensors();
  auto lin = [&](const std::string& name) { return p->linear_from(t.at(name + ".weight"), t.at(name + ".bias")); };
#define GFDIT_DIT_LIN(dst, name)   \
  {                                \
    auto r_ = lin(name);           \
    if (!r_) return r_.err();      \
    dst = *r_;                     \
  }
  GFDIT_DIT_LIN(p->x_embed, "x_embed");
  GFDIT_DIT_LIN(p->t_fc1, "t_embed.fc1");
  GFDIT_DIT_LIN(p->t_fc2, "t_embed.fc2");
  if (m.config().cond == conditioning::text) {
    GFDIT_DIT_LIN(p->txt, "txt_embed");
  } else {
    const auto& y = t.at("y_embed.table");
    p->y_table.resize(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) p->y_table[i] = from_bf16(y[i]);
  }
  for (int i = 0; i < m.config().depth; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    dev_block d;
    GFDIT_DIT_LIN(d.ada, b + ".ada");
    GFDIT_DIT_LIN(d.qkv, b + ".qkv");
    GFDIT_DIT_LIN(d.proj, b + ".proj");
    GFDIT_DIT_LIN(d.fc1, b + ".fc1");
    GFDIT_DIT_LIN(d.fc2, b + ".fc2");
    p->blocks.push_back(d);
  }
  GFDIT_DIT_LIN(p->final_ada, "final.ada");
  GFDIT_DIT_LIN(p->final_linear, "final.linear");
#undef GFDIT_DIT_LIN
  return std::unique_ptr<gpu_model>(new gpu_model(std::move(p)));
}

result<std::unique_ptr<gpu_model>> gpu_model::generate(const model_config& c, std::uint64_t seed, int device) {
  if (auto v = validate(c); !v) return v.err();
  if (!gpu_available()) return make_error(errc::not_found, "dit gpu: no CUDA device");
  auto p = std::make_unique<impl>();
  if (auto r = p->init(c, device); !r) return r.err();
  const int H = c.hidden;
  std::uint64_t s = seed;
  auto gen = [&](dev_linear& dst, int out, int in) -> result<void> {
    auto r = p->linear_gen(out, in, ++s);
    if (!r) return r.err();
    dst = *r;
    return {};
  };
  for (int i = 0; i < c.depth; ++i) {
    dev_block d;
    if (auto r = gen(d.ada, 6 * H, H); !r) return r.err();
    if (auto r = gen(d.qkv, 3 * H, H); !r) return r.err();
    if (auto r = gen(d.proj, H, H); !r) return r.err();
    if (auto r = gen(d.fc1, H * c.mlp_ratio, H); !r) return r.err();
    if (auto r = gen(d.fc2, H, H * c.mlp_ratio); !r) return r.err();
    p->blocks.push_back(d);
  }
  if (auto r = gen(p->final_ada, 2 * H, H); !r) return r.err();
  if (auto r = gen(p->final_linear, c.patch_dim(), H); !r) return r.err();
  GFDIT_CUDA(cudaStreamSynchronize(p->st));
  return std::unique_ptr<gpu_model>(new gpu_model(std::move(p)));
}

result<gpu_timing> gpu_model::time_block(int batch, std::int64_t tokens, int iters) {
  return impl_->time(batch, tokens, iters, false);
}
result<gpu_timing> gpu_model::time_step(int batch, std::int64_t tokens, int iters) {
  return impl_->time(batch, tokens, iters, true);
}
result<gpu_timing> gpu_model::time_rank_compute(int batch, std::int64_t tokens, int degree, bool whole_step, int iters) {
  if (degree < 1 || impl_->c.heads % degree != 0 || tokens % degree != 0)
    return make_error(errc::invalid_argument, "dit gpu: degree must divide the heads and the tokens");
  impl_->emu_degree = degree;
  auto r = impl_->time(batch, tokens, iters, whole_step);
  impl_->emu_degree = 1;
  return r;
}

namespace {

// Degree 1 (g without a World; `shards` > 1 emulates that many ranks on this GPU) or this rank
// of a real Ulysses group (my image shard in and out, like forward_cpu). Local rows: my text
// shard, then my image shard; at degree 1 that is every token in global order.
result<std::vector<float>> forward_on(gpu_model::impl& p, const forward_input& in, int shards, const sp_group& g) {
  const model_config& c = p.c;
  const int B = in.batch, H = c.hidden, P = c.patch_dim(), D = c.head_dim();
  const bool text = c.cond == conditioning::text;
  const std::int64_t NI = c.image_tokens(), NT = text ? c.text_tokens : 0, N = NI + NT;
  const int deg = g.degree(), me = g.index();
  const auto ts = token_shard(NT, deg, std::max(me, 0)), is = token_shard(NI, deg, std::max(me, 0));
  const std::int64_t TC = ts.count, IC = is.count, NR = TC + IC;  // my text, image, all rows
  if (static_cast<std::int64_t>(in.image.size()) != B * IC * P || static_cast<int>(in.timesteps.size()) != B ||
      (!text && static_cast<int>(in.labels.size()) != B) || (text && static_cast<std::int64_t>(in.text.size()) != B * NT * c.text_dim))
    return make_error(errc::invalid_argument, "dit gpu forward: inputs have the wrong sizes (image: this rank's shard, text: whole)");
  if (p.blocks.empty() || p.x_embed.w == nullptr) return make_error(errc::state, "dit gpu forward: needs uploaded weights");
  if (shards < 1 || c.heads % shards != 0 || shards > N || (g.world && shards != 1))
    return make_error(errc::invalid_argument, "dit gpu forward: shards must divide the heads (and be 1 with a World)");
  if (auto r = p.ensure_buffers(B, N); !r) return r.err();
  if (g.world)
    if (auto r = p.ulysses_begin(g, B); !r) return r.err();
  std::vector<void*> tmp;
  auto cleanup = [&]() { cudaStreamSynchronize(p.st); for (void* q : tmp) cudaFree(q); p.ulysses_end(); };
  auto run = [&]() -> result<std::vector<float>> {
    // Host-side inputs: bf16 patches and text, sinusoidal timestep features, class rows,
    // position tables (the same formulas as the CPU path).
    std::vector<std::uint16_t> img(in.image.size()), txt(static_cast<std::size_t>(B * TC) * c.text_dim),
        tf(static_cast<std::size_t>(B) * 256);
    for (std::size_t i = 0; i < img.size(); ++i) img[i] = to_bf16(in.image[i]);
    for (int b = 0; b < B; ++b)  // my text rows
      for (std::int64_t i = 0; i < TC * c.text_dim; ++i)
        txt[b * TC * c.text_dim + i] = to_bf16(in.text[(b * NT + ts.begin) * c.text_dim + i]);
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < 128; ++k) {
        const double w = std::exp(-std::log(10000.0) * k / (128.0 - c.freq_shift));  // forward_cpu's
        tf[b * 256 + k] = to_bf16(static_cast<float>(std::cos(in.timesteps[b] * w)));
        tf[b * 256 + 128 + k] = to_bf16(static_cast<float>(std::sin(in.timesteps[b] * w)));
      }
    std::vector<float> extra;
    if (!text) {
      extra.resize(static_cast<std::size_t>(B) * H);
      for (int b = 0; b < B; ++b)
        for (int i = 0; i < H; ++i) extra[b * H + i] = p.y_table[static_cast<std::size_t>(in.labels[b]) * H + i];
    }
    std::vector<float> pos, cs, sn;
    if (c.pos == positional::sincos) {
      pos.assign(static_cast<std::size_t>(IC) * H, 0.0f);
      const int axes = c.video() ? 3 : 2, per = 2 * (H / (2 * axes));
      for (std::int64_t li = 0; li < IC; ++li) {
        const std::int64_t t = is.begin + li, hw = static_cast<std::int64_t>(c.grid_h()) * c.grid_w();
        // Column, row, frame: forward_cpu's (and DiT's) order.
        const int coord[3] = {static_cast<int>(t % c.grid_w()), static_cast<int>(t % hw / c.grid_w()), static_cast<int>(t / hw)};
        for (int a = 0; a < axes; ++a)
          for (int k = 0; k < per / 2; ++k) {
            const double w = std::pow(10000.0, -static_cast<double>(k) / (per / 2));
            pos[li * H + a * per + k] = static_cast<float>(std::sin(coord[a] * w));
            pos[li * H + a * per + per / 2 + k] = static_cast<float>(std::cos(coord[a] * w));
          }
      }
    } else {
      // Per local row (text rows: no rotation).
      cs.assign(static_cast<std::size_t>(NR) * D / 2, 1.0f);
      sn.assign(cs.size(), 0.0f);
      const int a = 2 * (D / 6), dt = D - 2 * a;
      const int seg[3] = {dt, a, a};
      for (std::int64_t l = TC; l < NR; ++l) {
        const std::int64_t t = is.begin + l - TC, hw = static_cast<std::int64_t>(c.grid_h()) * c.grid_w();
        const int coord[3] = {static_cast<int>(t / hw), static_cast<int>(t % hw / c.grid_w()), static_cast<int>(t % c.grid_w())};
        int off = 0;
        for (int ax = 0; ax < 3; ++ax) {
          for (int i = 0; i < seg[ax] / 2; ++i) {
            const double ang = coord[ax] * std::pow(static_cast<double>(c.rope_theta), -2.0 * i / seg[ax]);
            cs[l * (D / 2) + off / 2 + i] = static_cast<float>(std::cos(ang));
            sn[l * (D / 2) + off / 2 + i] = static_cast<float>(std::sin(ang));
          }
          off += seg[ax];
        }
      }
    }
    auto up = [&](const void* src, std::size_t bytes) -> result<void*> {
      void* d = nullptr;
      GFDIT_CUDA(cudaMalloc(&d, std::max<std::size_t>(bytes, 1)));
      tmp.push_back(d);
      if (src && bytes) GFDIT_CUDA(cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, p.st));
      return d;
    };
#define GFDIT_DIT_UP(var, T, src, bytes) \
  T var = nullptr;                       \
  {                                      \
    auto r_ = up((src), (bytes));        \
    if (!r_) return r_.err();            \
    var = static_cast<T>(*r_);           \
  }
    GFDIT_DIT_UP(d_img, bf16*, img.data(), img.size() * 2);
    GFDIT_DIT_UP(d_txt, bf16*, txt.data(), txt.size() * 2);
    GFDIT_DIT_UP(d_tf, bf16*, tf.data(), tf.size() * 2);
    GFDIT_DIT_UP(d_extra, float*, extra.data(), extra.size() * 4);
    GFDIT_DIT_UP(d_pos, float*, pos.data(), pos.size() * 4);
    GFDIT_DIT_UP(d_t1, bf16*, nullptr, static_cast<std::size_t>(B) * H * 2);
    GFDIT_DIT_UP(d_t2, bf16*, nullptr, static_cast<std::size_t>(B) * H * 2);
    GFDIT_DIT_UP(d_img_e, bf16*, nullptr, static_cast<std::size_t>(B * IC) * H * 2);
    GFDIT_DIT_UP(d_txt_e, bf16*, nullptr, static_cast<std::size_t>(B * TC) * H * 2);
#undef GFDIT_DIT_UP
    if (!cs.empty()) {
      GFDIT_CUDA(cudaMemcpyAsync(p.cs, cs.data(), cs.size() * 4, cudaMemcpyHostToDevice, p.st));
      GFDIT_CUDA(cudaMemcpyAsync(p.sn, sn.data(), sn.size() * 4, cudaMemcpyHostToDevice, p.st));
    }
    if (auto r = p.gemm(p.t_fc1, d_tf, B, d_t1); !r) return r.err();
    gpu::silu(d_t1, static_cast<long>(B) * H, p.st);
    if (auto r = p.gemm(p.t_fc2, d_t1, B, d_t2); !r) return r.err();
    gpu::cond(d_t2, text ? nullptr : d_extra, p.silu_c, static_cast<long>(B) * H, p.st);
    if (auto r = p.gemm(p.x_embed, d_img, B * IC, d_img_e); !r) return r.err();
    if (text && TC > 0)
      if (auto r = p.gemm(p.txt, d_txt, B * TC, d_txt_e); !r) return r.err();
    gpu::assemble(p.x, d_txt_e, d_img_e, pos.empty() ? nullptr : d_pos, B, static_cast<int>(TC), static_cast<int>(IC), H, p.st);
    GFDIT_CUDA(cudaGetLastError());
    if (auto r = p.modulations(); !r) return r.err();
    const bool rope = c.pos == positional::rope;
    for (int blk = 0; blk < c.depth; ++blk)
      if (auto r = g.world ? p.block_ulysses(blk, rope, blk == 0)
                           : shards == 1 ? p.block(blk, rope, blk == 0) : p.block_sharded(blk, rope, blk == 0, shards);
          !r)
        return r.err();
    if (auto r = g.world || shards == 1 ? p.final_layer(NR) : p.final_layer_sharded(shards); !r) return r.err();
    if (g.world)
      if (auto r = g.world->synchronize(coll::stream_ref{p.st}); !r) return r.err();  // a peer that never came
    std::vector<std::uint16_t> o(static_cast<std::size_t>(B * NR) * P);
    GFDIT_CUDA(cudaMemcpyAsync(o.data(), p.out, o.size() * 2, cudaMemcpyDeviceToHost, p.st));
    GFDIT_CUDA(cudaStreamSynchronize(p.st));
    std::vector<float> res(static_cast<std::size_t>(B * IC) * P);
    for (int b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < IC; ++t)
        for (int j = 0; j < P; ++j) res[(b * IC + t) * P + j] = from_bf16(o[((b * NR) + TC + t) * P + j]);
    return res;
  };
  auto r = run();
  cleanup();
  return r;
}

}  // namespace

result<std::vector<float>> gpu_model::forward(const forward_input& in, int shards) {
  return forward_on(*impl_, in, shards, sp_group{});
}

result<std::vector<float>> gpu_model::forward(const forward_input& in, const sp_group& g) {
  if (g.world && g.group.self() < 0)
    return make_error(errc::invalid_argument, "dit gpu forward: this rank is not a member of the group");
  return forward_on(*impl_, in, 1, g);
}

result<void> gpu_model::set_ulysses_chunks(int chunks) {
  if (chunks < 1 || chunks > impl::max_chunks)
    return make_error(errc::invalid_argument, "dit gpu set_ulysses_chunks: " + std::to_string(chunks) +
                                                  " is outside 1 .. " + std::to_string(impl::max_chunks));
  impl_->chunks_req = chunks;
  return {};
}

void gpu_model::set_ulysses_exchange(ulysses_exchange e) noexcept { impl_->exchange_req = e; }

result<void> gpu_model::denoise(const request& r, int begin, int end, const sp_group& g, std::vector<float>& shard) {
  impl& p = *impl_;
  device_bytes staging;  // the CFG pair's exchange (mine, then both): GPU Worlds move device memory
  auto forward_step = [this](const forward_input& in, const sp_group& sg) {
    return sg.degree() > 1 ? forward(in, sg) : forward(in, 1);
  };
  auto gather = [&](const float* mine, float* both, std::size_t bytes) -> result<void> {
    if (g.world->kind() == coll::backend_kind::host) return g.world->all_gather(g.cfg_pair, mine, both, bytes);
    if (!staging.p) GFDIT_CUDA(cudaMalloc(&staging.p, 3 * bytes));  // the same bytes every step
    char* d = static_cast<char*>(staging.p);
    const coll::stream_ref sr{p.st};
    GFDIT_CUDA(cudaMemcpyAsync(d, mine, bytes, cudaMemcpyHostToDevice, p.st));
    if (auto x = g.world->all_gather(g.cfg_pair, d, d + bytes, bytes, sr); !x) return x;
    if (auto x = g.world->synchronize(sr); !x) return x;
    GFDIT_CUDA(cudaMemcpy(both, d + bytes, 2 * bytes, cudaMemcpyDeviceToHost));
    return {};
  };
  return denoise_with(forward_step, gather, p.c, r, begin, end, g, shard);
}

result<gpu_timing> gpu_model::time_ulysses(int batch, const sp_group& g, bool whole_step, int iters) {
  impl& p = *impl_;
  if (!g.world) return make_error(errc::invalid_argument, "dit gpu time_ulysses: needs a World (use time_step for degree 1)");
  const std::int64_t N = p.c.seq_tokens();
  if (auto r = p.ensure_buffers(batch, N); !r) return r.err();
  if (auto r = p.ulysses_begin(g, batch); !r) return r.err();
  auto r = p.time(batch, N, iters, whole_step);
  p.ulysses_end();
  return r;
}

result<std::vector<float>> reshard_on_device(coll::World& w, const coll::Group& from, const coll::Group& to,
                                             const model_config& c, std::span<const float> shard) {
  const std::int64_t NI = c.image_tokens(), P = c.patch_dim();
  const std::size_t in_n = from.is_member() ? static_cast<std::size_t>(coll::shard_rows(NI, from.size(), from.self()) * P) : 0;
  const std::size_t out_n = to.is_member() ? static_cast<std::size_t>(coll::shard_rows(NI, to.size(), to.self()) * P) : 0;
  if (from.is_member() && shard.size() != in_n) return make_error(errc::invalid_argument, "dit reshard: source shard has the wrong size");
  device_bytes src, dst;
  GFDIT_CUDA(cudaMalloc(&src.p, std::max<std::size_t>(in_n, 1) * sizeof(float)));
  GFDIT_CUDA(cudaMalloc(&dst.p, std::max<std::size_t>(out_n, 1) * sizeof(float)));
  // Synchronous copies around a reshard on the default stream.
  if (in_n) GFDIT_CUDA(cudaMemcpy(src.p, shard.data(), in_n * sizeof(float), cudaMemcpyHostToDevice));
  const coll::stream_ref sr{nullptr};
  if (auto r = w.reshard(from, to, coll::token_layout{NI, static_cast<std::size_t>(P) * sizeof(float)}, src.p, dst.p, sr); !r)
    return r.err();
  if (auto r = w.synchronize(sr); !r) return r.err();
  std::vector<float> out(out_n);
  if (out_n) GFDIT_CUDA(cudaMemcpy(out.data(), dst.p, out_n * sizeof(float), cudaMemcpyDeviceToHost));
  return out;
}

int gpu_count() noexcept {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // namespace gfdit::dit
