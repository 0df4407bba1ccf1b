#pragma once
// gpu_model's insides, shared by the files that implement it: gpu_forward.cpp (set-up, buffers,
// the blocks and the forward), gpu_gemm.cpp (cuBLASLt plans and GEMMs), gpu_ulysses.cpp (the
// Ulysses exchange across a World) and gpu_timing.cpp (the timing and profiling helpers the
// benchmarks use). Not a public header.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "common/gpu_check.hpp"
#include "kernels/attention/attention.hpp"
#include "kernels/collectives/types.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/gpu_kernels.hpp"
#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

using bf16 = gpu::bf16;

struct dev_linear {
  bf16* w = nullptr;
  bf16* b = nullptr;
  int out = 0, in = 0;
};
struct dev_block {
  dev_linear ada, qkv, proj, fc1, fc2;
};

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
    int K = 1, HC = 0;                           // head chunks of the pipeline and heads per chunk (HL = K * HC)
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
  cudaEvent_t ev_join = nullptr, ev_p[max_chunks] = {}, ev_q[max_chunks] = {}, ev_a[max_chunks] = {};
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

  result<void> init(const model_config& cfg, int dev);

  result<dev_linear> linear_from(const std::vector<std::uint16_t>& w, const std::vector<std::uint16_t>& b);

  result<dev_linear> linear_gen(int out, int in, std::uint64_t stream);

  result<cublasLtMatmulAlgo_t> algo_for(int N, int K, bool gelu);

  cublasStatus_t make_desc(cublasLtMatmulDesc_t* op, const bf16* bias, bool gelu = false);

  // Y[M, out] = X[M, in] W^T + b (then tanh-GELU in the epilogue), bf16 in and out, fp32 accumulation.
  result<void> gemm(const dev_linear& L, const bf16* X, std::int64_t M, bf16* Y, bool gelu = false);

  result<void> ensure_buffers(int batch, std::int64_t tokens);

  // Head sizes the tensor-core attention takes: 64 and 128; others are zero-padded up to one.
  int padded_head_dim() const { return c.head_dim() <= 64 ? 64 : c.head_dim() <= 128 ? 128 : c.head_dim(); }

  // Attention of B x heads heads over all n tokens, [B, heads, n, Dp] starting at element `off`
  // of q, k, v and o (a head chunk's block under Ulysses).
  result<void> attention_fwd(int heads, std::size_t off = 0) { return attention_on(q, k, v, heads, off); }
  attention::problem attention_problem(int heads) const;
  // Into o (+off): q/k/v [B, heads, n, Dp] at qp/kp/vp (+off); the (sample, head) pairs in
  // [pair_begin, pair_end) (-1: all) where the tensor-core kernel runs, else all of them.
  result<void> attention_on(const bf16* qp, const bf16* kp, const bf16* vp, int heads, std::size_t off = 0,
                            int pair_begin = 0, int pair_end = -1);

  // The norm after block blk: the next block's first (shift 0, scale H of its 6H rows) or the
  // final layer's (fmod, 2H rows). A block's last residual computes it (residual_ln_mod), so a
  // block starts with its norm only when it is the first one run (`first`).
  struct next_norm {
    const bf16* mod;  // sample 0's row
    int stride;
  };
  next_norm norm_after(int blk) const;

  // One block on x (mods for the block already in mod + blk*B*6H); rope tables optional.
  result<void> block(int blk, bool rope, bool first);

  // Projection of attn, gated residual, then the MLP half, on M rows (nl per sample), ending
  // with the norm after the block.
  // From the attention rows a_in [M, NH*D] (attn, or the direct exchange's window).
  result<void> after_attention(int blk, const bf16* md, std::int64_t M, std::int64_t nl, const bf16* a_in);

  // What `shards` Ulysses ranks compute, on one GPU: every row-wise stage (norms, GEMMs,
  // residuals) runs per token shard with that shard's row count, attention per head group over
  // all tokens. The all-to-all is the identity here (one memory), so the bits must equal block().
  result<void> block_sharded(int blk, bool rope, bool first, int shards);

  // Checks the group and sets up `ul` for (batch, the model's tokens); buffers for the two
  // all-to-alls. The send buffer is the channel's symmetric area when it fits (no staging copy).
  result<void> ulysses_begin(const sp_group& g, int batch);
  // The direct exchange when every member's window is mapped here and fits the symmetric area;
  // a barrier then orders it after whatever used the areas before (my earlier reads of my own).
  gpu::ulysses_window window(int batch) const;
  std::size_t direct_bytes(int batch) const;
  bool begin_direct(int batch);
  void ulysses_end();

  // One block as a Ulysses rank: row-wise stages on my nr rows, all-to-all to [my heads x all
  // tokens], attention (batch B, HL heads, all tokens: per (head, query) the same work as at
  // degree 1), all-to-all back. Buffers sized for all tokens (ensure_buffers(B, N)).
  // Pipelined over K head chunks: chunk j+1's q/k/v exchange and chunk j-1's output exchange
  // (stream sc) run while chunk j's attention runs (stream st). Each chunk's attention is the
  // degree-1 work of its heads, so the bits do not depend on K. Every rank issues the same
  // exchanges in the same order on the group's channel (q0 q1 o0 q2 o1 .. o(K-1)), all on sc.
  result<void> block_ulysses(int blk, bool rope, bool first);

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
  result<void> block_direct(int blk, bool rope, bool first);

  result<void> final_layer_sharded(int shards);  // its norm: as final_layer

  // The final layer's norm was computed by the last block (norm_after).
  result<void> final_layer(std::int64_t nl);

  // Modulations of every block and the final layer from silu_c.
  result<void> modulations();

  result<gpu_timing> time(int batch, std::int64_t tokens, int iters, bool whole_step);
};

}  // namespace gfdit::dit
