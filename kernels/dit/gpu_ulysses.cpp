// gpu_model's Ulysses exchange across a World: the all-to-all (or the direct exchange through the
// group channel's symmetric windows) around each block's attention.
#include "kernels/dit/gpu_model_impl.hpp"

namespace gfdit::dit {

result<void> gpu_model::impl::ulysses_begin(const sp_group& g, int batch) {
  const int deg = g.degree(), me = g.index();
  if (g.world->kind() == coll::backend_kind::host)
    return make_error(errc::invalid_argument, "dit gpu ulysses: the World must have a GPU backend (device buffers)");
  if (me < 0) return make_error(errc::invalid_argument, "dit gpu ulysses: this rank is not a member of the group");
  if (c.heads % deg != 0)
    return make_error(errc::invalid_argument, "dit gpu ulysses: Ulysses degree " + std::to_string(deg) +
                                                  " does not divide the head count " + std::to_string(c.heads));
  if (c.head_dim() % 8 != 0)
    return make_error(errc::invalid_argument, "dit gpu ulysses: head size must be a multiple of 8");
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

gpu::ulysses_window gpu_model::impl::window(int batch) const {
  gpu::ulysses_window w;
  w.deg = ul.deg, w.me = ul.g.self(), w.B = batch, w.HL = ul.HL, w.Dp = padded_head_dim(), w.nt = ul.nt, w.ni = ul.ni;
  return w;
}

std::size_t gpu_model::impl::direct_bytes(int batch) const {
  return (3 * static_cast<std::size_t>(window(batch).qkv_elems()) + static_cast<std::size_t>(batch) * ul.R * c.hidden) *
         sizeof(bf16);
}

bool gpu_model::impl::begin_direct(int batch) {
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
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&ul.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    ul.sms = 0;
  if (overlap_attention && ul.sms > 0 && padded_head_dim() <= 128) {  // the tensor-core attention
    attention::problem p = attention_problem(ul.HL);
    p.batch = batch;
    const int pairs = batch * ul.HL, whole = attention::forward_whole_wave_pairs(p);
    if (whole > 0 && whole < pairs) ul.first_pairs = pairs - whole;
  }
  return true;
}

void gpu_model::impl::ulysses_end() {
  if (!ul_allocs.empty()) cudaStreamSynchronize(st);
  for (void* p : ul_allocs) cudaFree(p);
  ul_allocs.clear();
  ul = ulysses{};
}

result<void> gpu_model::impl::block_ulysses(int blk, bool rope, bool first) {
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
    gpu::ulysses_pack_qkv(qkv, rope ? cs : nullptr, rope ? sn : nullptr, ul.send + j * cq, B, nr, NH, D, Dp, HL, R, HC,
                          j, st);
    GFDIT_CUDA(cudaGetLastError());
    GFDIT_CUDA(cudaEventRecord(ev_p[j], st));
  }
  auto exchange_qkv = [&](int j) -> result<void> {
    GFDIT_CUDA(cudaStreamWaitEvent(cs_, ev_p[j], 0));
    if (auto r = ul.w->all_to_all(ul.g, ul.send + j * cq, ul.recv + j * cq, ul.seg_qkv, sr); !r) return r;
    gpu::ulysses_unpack_qkv(ul.recv + j * cq, q + j * ca, k + j * ca, v + j * ca, B, HC, ul.nt, ul.ni, ul.deg, R, Dp,
                            cs_);
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

result<void> gpu_model::impl::block_direct(int blk, bool rope, bool first) {
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

}  // namespace gfdit::dit
