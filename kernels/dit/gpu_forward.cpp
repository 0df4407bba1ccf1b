#include "kernels/dit/gpu_forward.hpp"

#include "kernels/dit/gpu_model_impl.hpp"

namespace gfdit::dit {

namespace {

// Device memory owned for one call (host data staged for a GPU World's collectives).
struct device_bytes {
  void* p = nullptr;
  device_bytes() = default;
  device_bytes(const device_bytes&) = delete;
  device_bytes& operator=(const device_bytes&) = delete;
  ~device_bytes() { cudaFree(p); }
};

}  // namespace

result<void> gpu_model::impl::init(const model_config& cfg, int dev) {
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

result<void> gpu_model::impl::ensure_buffers(int batch, std::int64_t tokens) {
  if (batch == B && tokens == n) return {};
  GFDIT_CUDA(cudaStreamSynchronize(st));
  for (void* p : act) cudaFree(p);
  act.clear();
  B = batch;
  n = tokens;
  const std::size_t M = static_cast<std::size_t>(B) * n, H = c.hidden, Mlp = H * c.mlp_ratio;
  const std::size_t NH = c.heads, D = c.head_dim();
#define GFDIT_DIT_ALLOC(ptr, T, count) \
  {                                    \
    auto r_ = alloc<T>((count), act);  \
    if (!r_) return r_.err();          \
    ptr = *r_;                         \
  }
  GFDIT_DIT_ALLOC(x, float, M* H);
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
  GFDIT_DIT_ALLOC(lse, float, M* NH);
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

attention::problem gpu_model::impl::attention_problem(int heads) const {
  attention::problem p;
  p.batch = B;
  p.heads = heads;
  p.seqlen = static_cast<int>(n);
  p.head_dim = padded_head_dim();
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim()));  // of the real head size
  return p;
}

result<void> gpu_model::impl::attention_on(const bf16* qp, const bf16* kp, const bf16* vp, int heads, std::size_t off,
                                           int pair_begin, int pair_end) {
  const int D = padded_head_dim();
  if (D == 64 || D == 128) {
    attention::forward_args a;
    a.q = qp + off;
    a.k = kp + off;
    a.v = vp + off;
    a.o = o + off;
    a.lse = lse + off / D;
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

gpu_model::impl::next_norm gpu_model::impl::norm_after(int blk) const {
  if (blk + 1 < c.depth) return {mod + static_cast<std::size_t>(blk + 1) * B * 6 * c.hidden, 6 * c.hidden};
  return {fmod, 2 * c.hidden};
}

result<void> gpu_model::impl::block(int blk, bool rope, bool first) {
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
  gpu::split_rope(qkv, q, k, v, rope ? cs : nullptr, rope ? sn : nullptr, B, static_cast<int>(nl), 0,
                  static_cast<int>(nl), NH, D, padded_head_dim(), st);
  mark();
  if (auto r = attention_fwd(NH / emu_degree); !r) return r;
  mark();
  gpu::merge_heads(o, attn, B, static_cast<int>(nl), 0, static_cast<int>(nl), NH, D, padded_head_dim(), st);
  mark();
  return after_attention(blk, md, M, nl, attn);
}

result<void> gpu_model::impl::after_attention(int blk, const bf16* md, std::int64_t M, std::int64_t nl,
                                              const bf16* a_in) {
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

result<void> gpu_model::impl::block_sharded(int blk, bool rope, bool first, int shards) {
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
                      rope ? sn : nullptr, 1, static_cast<int>(cnt), static_cast<int>(l0), static_cast<int>(n), NH, D,
                      Dp, st);
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
        a.q = q + off;
        a.k = k + off;
        a.v = v + off;
        a.o = o + off;
        a.lse = lse;
        if (auto r = attention::forward(p, a, st); !r) return r;
      } else {
        gpu::naive_attention(q + off, k + off, v + off, o + off, HL, static_cast<int>(n), D, st);
      }
    }
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < shards; ++s) {
      const std::int64_t l0 = coll::shard_begin(n, shards, s), cnt = coll::shard_rows(n, shards, s), r0 = b * n + l0;
      const bf16* md = mod + (static_cast<std::size_t>(blk) * B + b) * 6 * H;
      gpu::merge_heads(o + b * per_sample, attn + r0 * H, 1, static_cast<int>(cnt), static_cast<int>(l0),
                       static_cast<int>(n), NH, D, Dp, st);
      if (auto r = gemm(W.proj, attn + r0 * H, cnt, y2 + r0 * H); !r) return r;
      gpu::residual_ln_mod(x + r0 * H, y2 + r0 * H, md + 2 * H, 6 * H, cnt, H, static_cast<int>(cnt), md, 6 * H, 3 * H,
                           4 * H, hn + r0 * H, st);
      if (auto r = gemm(W.fc1, hn + r0 * H, cnt, y + r0 * Mlp, true); !r) return r;
      if (auto r = gemm(W.fc2, y + r0 * Mlp, cnt, y2 + r0 * H); !r) return r;
      const next_norm nx = norm_after(blk);
      gpu::residual_ln_mod(x + r0 * H, y2 + r0 * H, md + 5 * H, 6 * H, cnt, H, static_cast<int>(cnt),
                           nx.mod + static_cast<std::size_t>(b) * nx.stride, nx.stride, 0, H, hn + r0 * H, st);
    }
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

result<void> gpu_model::impl::final_layer_sharded(int shards) {
  const int H = c.hidden, P = c.patch_dim();
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < shards; ++s) {
      const std::int64_t l0 = coll::shard_begin(n, shards, s), cnt = coll::shard_rows(n, shards, s), r0 = b * n + l0;
      if (auto r = gemm(final_linear, hn + r0 * H, cnt, out + r0 * P); !r) return r;
    }
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

result<void> gpu_model::impl::final_layer(std::int64_t nl) {
  const std::int64_t M = static_cast<std::int64_t>(B) * nl;
  if (auto r = gemm(final_linear, hn, M, out); !r) return r;
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

result<void> gpu_model::impl::modulations() {
  for (int blk = 0; blk < c.depth; ++blk)
    if (auto r = gemm(blocks[static_cast<std::size_t>(blk)].ada, silu_c, B,
                      mod + static_cast<std::size_t>(blk) * B * 6 * c.hidden);
        !r)
      return r;
  return gemm(final_ada, silu_c, B, fmod);
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
#define GFDIT_DIT_LIN(dst, name) \
  {                              \
    auto r_ = lin(name);         \
    if (!r_) return r_.err();    \
    dst = *r_;                   \
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
      (!text && static_cast<int>(in.labels.size()) != B) ||
      (text && static_cast<std::int64_t>(in.text.size()) != B * NT * c.text_dim))
    return make_error(errc::invalid_argument,
                      "dit gpu forward: inputs have the wrong sizes (image: this rank's shard, text: whole)");
  if (p.blocks.empty() || p.x_embed.w == nullptr)
    return make_error(errc::state, "dit gpu forward: needs uploaded weights");
  if (shards < 1 || c.heads % shards != 0 || shards > N || (g.world && shards != 1))
    return make_error(errc::invalid_argument, "dit gpu forward: shards must divide the heads (and be 1 with a World)");
  if (auto r = p.ensure_buffers(B, N); !r) return r.err();
  if (g.world)
    if (auto r = p.ulysses_begin(g, B); !r) return r.err();
  std::vector<void*> tmp;
  auto cleanup = [&]() {
    cudaStreamSynchronize(p.st);
    for (void* q : tmp) cudaFree(q);
    p.ulysses_end();
  };
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
        const int coord[3] = {static_cast<int>(t % c.grid_w()), static_cast<int>(t % hw / c.grid_w()),
                              static_cast<int>(t / hw)};
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
        const int coord[3] = {static_cast<int>(t / hw), static_cast<int>(t % hw / c.grid_w()),
                              static_cast<int>(t % c.grid_w())};
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
    gpu::assemble(p.x, d_txt_e, d_img_e, pos.empty() ? nullptr : d_pos, B, static_cast<int>(TC), static_cast<int>(IC),
                  H, p.st);
    GFDIT_CUDA(cudaGetLastError());
    if (auto r = p.modulations(); !r) return r.err();
    const bool rope = c.pos == positional::rope;
    for (int blk = 0; blk < c.depth; ++blk)
      if (auto r = g.world       ? p.block_ulysses(blk, rope, blk == 0)
                   : shards == 1 ? p.block(blk, rope, blk == 0)
                                 : p.block_sharded(blk, rope, blk == 0, shards);
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

result<std::vector<float>> reshard_on_device(coll::World& w, const coll::Group& from, const coll::Group& to,
                                             const model_config& c, std::span<const float> shard) {
  const std::int64_t NI = c.image_tokens(), P = c.patch_dim();
  const std::size_t in_n =
      from.is_member() ? static_cast<std::size_t>(coll::shard_rows(NI, from.size(), from.self()) * P) : 0;
  const std::size_t out_n =
      to.is_member() ? static_cast<std::size_t>(coll::shard_rows(NI, to.size(), to.self()) * P) : 0;
  if (from.is_member() && shard.size() != in_n)
    return make_error(errc::invalid_argument, "dit reshard: source shard has the wrong size");
  device_bytes src, dst;
  GFDIT_CUDA(cudaMalloc(&src.p, std::max<std::size_t>(in_n, 1) * sizeof(float)));
  GFDIT_CUDA(cudaMalloc(&dst.p, std::max<std::size_t>(out_n, 1) * sizeof(float)));
  // Synchronous copies around a reshard on the default stream.
  if (in_n) GFDIT_CUDA(cudaMemcpy(src.p, shard.data(), in_n * sizeof(float), cudaMemcpyHostToDevice));
  const coll::stream_ref sr{nullptr};
  if (auto r =
          w.reshard(from, to, coll::token_layout{NI, static_cast<std::size_t>(P) * sizeof(float)}, src.p, dst.p, sr);
      !r)
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
