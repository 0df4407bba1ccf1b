#include "kernels/dit/forward.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/dit/embeddings.hpp"
#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

namespace {

using vec = std::vector<float>;

// y[r] = W x[r] + b for each row; outputs rounded to bf16 (the GPU path stores bf16).
void linear(const linear_ref& L, const float* x, std::int64_t rows, float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * L.in;
    float* yr = y + r * L.out;
    for (int o = 0; o < L.out; ++o)
      yr[o] = round_bf16(dot(xr, L.w + static_cast<std::int64_t>(o) * L.in, L.in) + L.b[o]);
  }
}

float lane_sum(const float* a, int n) {
  float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) l[k] += a[i + k];
  for (int k = 0; i < n; ++i, ++k) l[k] += a[i];
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// LayerNorm without affine (eps 1e-6), then x * (1 + scale) + shift, rounded to bf16.
void modulated_norm(const float* x, int h, const float* shift, const float* scale, float* y, float* tmp) {
  const float mean = lane_sum(x, h) / static_cast<float>(h);
  for (int i = 0; i < h; ++i) tmp[i] = (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(lane_sum(tmp, h) / static_cast<float>(h) + 1e-6f);
  for (int i = 0; i < h; ++i) y[i] = round_bf16((x[i] - mean) * rstd * (1.0f + scale[i]) + shift[i]);
}

// RoPE on one head vector in place: axes (t, h, w) own [0, dt), [dt, dt+a), [dt+a, D).
void rope(float* x, int d, pos3 p, float theta) {
  const int a = 2 * (d / 6), dt = d - 2 * a;
  const int seg[3] = {dt, a, a};
  const int coord[3] = {p.t, p.h, p.w};
  int off = 0;
  for (int ax = 0; ax < 3; ++ax) {
    for (int i = 0; i < seg[ax] / 2; ++i) {
      const double ang = coord[ax] * std::pow(static_cast<double>(theta), -2.0 * i / seg[ax]);
      const float c = static_cast<float>(std::cos(ang)), s = static_cast<float>(std::sin(ang));
      float& x0 = x[off + 2 * i];
      float& x1 = x[off + 2 * i + 1];
      const float a0 = x0, a1 = x1;
      x0 = round_bf16(a0 * c - a1 * s);
      x1 = round_bf16(a0 * s + a1 * c);
    }
    off += seg[ax];
  }
}

}  // namespace

void attention_cpu(const float* q, const float* k, const float* v, float* o, int n, int heads, int d) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const std::int64_t row = static_cast<std::int64_t>(heads) * d;
  vec s(static_cast<std::size_t>(n)), acc(static_cast<std::size_t>(d));
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < n; ++i) {
      const float* qi = q + i * row + h * d;
      float mx = -INFINITY;
      for (int j = 0; j < n; ++j) {
        s[j] = dot(qi, k + j * row + h * d, d) * scale;
        mx = std::max(mx, s[j]);
      }
      float sum = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int j = 0; j < n; ++j) {
        const float p = std::exp(s[j] - mx);
        sum += p;
        const float* vj = v + j * row + h * d;
        for (int e = 0; e < d; ++e) acc[e] += p * vj[e];
      }
      float* oi = o + i * row + h * d;
      for (int e = 0; e < d; ++e) oi[e] = round_bf16(acc[e] / sum);
    }
  }
}

result<std::vector<float>> forward_cpu(const model& m, const forward_input& in, const sp_group& g) {
  const model_config& c = m.config();
  const int B = in.batch, H = c.hidden, NH = c.heads, D = c.head_dim(), P = c.patch_dim();
  const int deg = g.degree(), me = g.index();
  if (deg < 1 || me < 0)
    return make_error(errc::invalid_argument, "dit forward: this rank is not a member of the group");
  if (NH % deg != 0)
    return make_error(errc::invalid_argument, "dit forward: Ulysses degree " + std::to_string(deg) +
                                                  " does not divide the head count " + std::to_string(NH));
  const bool text = c.cond == conditioning::text;
  const std::int64_t NI = c.image_tokens(), NT = text ? c.text_tokens : 0, N = NI + NT;
  const auto img = token_shard(NI, deg, me), txt = token_shard(NT, deg, me);
  const std::int64_t n = img.count + txt.count;  // my tokens: my text rows, then my image rows
  if (static_cast<std::int64_t>(in.image.size()) != B * img.count * P)
    return make_error(errc::invalid_argument, "dit forward: image shard has the wrong size");
  if (static_cast<int>(in.timesteps.size()) != B)
    return make_error(errc::invalid_argument, "dit forward: one timestep per sample");
  if (!text && static_cast<int>(in.labels.size()) != B)
    return make_error(errc::invalid_argument, "dit forward: one label per sample");
  if (text && static_cast<std::int64_t>(in.text.size()) != B * NT * c.text_dim)
    return make_error(errc::invalid_argument, "dit forward: text embeddings have the wrong size");
  for (int b = 0; !text && b < B; ++b)
    if (in.labels[b] < 0 || in.labels[b] > c.num_classes)
      return make_error(errc::invalid_argument, "dit forward: label out of range");

  // Conditioning vector per sample: timestep MLP (+ class embedding), computed whole everywhere.
  vec cvec(static_cast<std::size_t>(B) * H), silu_c(cvec.size());
  {
    vec f(256), t1(H);
    for (int b = 0; b < B; ++b) {
      timestep_features(in.timesteps[b], c.freq_shift, f.data());
      for (auto& e : f) e = round_bf16(e);
      linear(m.t_fc1(), f.data(), 1, t1.data());
      for (auto& x : t1) x = round_bf16(silu(x));
      linear(m.t_fc2(), t1.data(), 1, &cvec[b * H]);
      if (!text)
        for (int i = 0; i < H; ++i) cvec[b * H + i] += m.y_table()[static_cast<std::int64_t>(in.labels[b]) * H + i];
      for (int i = 0; i < H; ++i) silu_c[b * H + i] = round_bf16(silu(cvec[b * H + i]));
    }
  }

  // Embeddings into the fp32 residual stream x [B][n][H].
  vec x(static_cast<std::size_t>(B * n * H));
  {
    vec pin(static_cast<std::size_t>(std::max<std::int64_t>(P, c.text_dim)));
    for (int b = 0; b < B; ++b) {
      for (std::int64_t l = 0; l < txt.count; ++l) {
        const float* src = &in.text[(b * NT + txt.begin + l) * c.text_dim];
        for (int i = 0; i < c.text_dim; ++i) pin[i] = round_bf16(src[i]);
        linear(m.txt_embed(), pin.data(), 1, &x[(b * n + l) * H]);
      }
      for (std::int64_t l = 0; l < img.count; ++l) {
        const float* src = &in.image[(b * img.count + l) * P];
        for (int i = 0; i < P; ++i) pin[i] = round_bf16(src[i]);
        float* xr = &x[(b * n + txt.count + l) * H];
        linear(m.x_embed(), pin.data(), 1, xr);
        if (c.pos == positional::sincos) {
          vec pe(static_cast<std::size_t>(H));
          sincos_position(c, img.begin + l, pe.data());
          for (int i = 0; i < H; ++i) xr[i] += pe[i];
        }
      }
    }
  }

  // Global sequence index of member j's local token l (text rows first, then image rows).
  auto global_index = [&](int j, std::int64_t l) {
    const auto tj = token_shard(NT, deg, j), ij = token_shard(NI, deg, j);
    return l < tj.count ? tj.begin + l : NT + ij.begin + (l - tj.count);
  };
  auto member_tokens = [&](int j) { return token_shard(NT, deg, j).count + token_shard(NI, deg, j).count; };

  const int HL = NH / deg;  // heads this rank attends over
  const int M = H * c.mlp_ratio;
  vec mod(static_cast<std::size_t>(B) * 6 * H), hn(static_cast<std::size_t>(n) * H), tmp(H);
  vec qkv(static_cast<std::size_t>(n) * 3 * H);
  vec qkv_all(static_cast<std::size_t>(B * n) * 3 * H);
  vec q(static_cast<std::size_t>(N * HL * D)), k(q.size()), v(q.size()), o(static_cast<std::size_t>(B) * N * HL * D);
  vec o_local(static_cast<std::size_t>(B * n) * H), y(static_cast<std::size_t>(n) * std::max(H, M)),
      y2(static_cast<std::size_t>(n) * H);
  std::vector<std::uint16_t> sendb, recvb;
  std::vector<std::size_t> sbytes(deg), soff(deg), rbytes(deg), roff(deg);

  for (int blk = 0; blk < c.depth; ++blk) {
    const block_ref& W = m.block(blk);
    linear(W.ada, silu_c.data(), B, mod.data());
    // Attention half: modulated norm, QKV, RoPE, per sample.
    for (int b = 0; b < B; ++b) {
      const float* md = &mod[b * 6 * H];
      for (std::int64_t l = 0; l < n; ++l) modulated_norm(&x[(b * n + l) * H], H, md, md + H, &hn[l * H], tmp.data());
      linear(W.qkv, hn.data(), n, &qkv_all[b * n * 3 * H]);
      if (c.pos == positional::rope)
        for (std::int64_t l = 0; l < n; ++l) {
          const std::int64_t gi = global_index(me, l);
          const pos3 p = gi < NT ? pos3{} : image_pos(c, gi - NT);
          for (int part = 0; part < 2; ++part)
            for (int h = 0; h < NH; ++h) rope(&qkv_all[((b * n + l) * 3 + part) * H + h * D], D, p, c.rope_theta);
        }
    }
    // Ulysses: tokens -> heads. Member j gets my tokens' q, k, v of its heads, as bf16.
    {
      const std::size_t row = static_cast<std::size_t>(3) * HL * D;
      sendb.assign(static_cast<std::size_t>(B * n) * deg * row, 0);
      std::size_t off = 0;
      for (int j = 0; j < deg; ++j) {
        soff[j] = off * 2;
        for (int b = 0; b < B; ++b)
          for (std::int64_t l = 0; l < n; ++l)
            for (int part = 0; part < 3; ++part)
              for (int e = 0; e < HL * D; ++e)
                sendb[off++] = to_bf16(qkv_all[((b * n + l) * 3 + part) * H + j * HL * D + e]);
        sbytes[j] = off * 2 - soff[j];
      }
      std::size_t roff_el = 0;
      for (int j = 0; j < deg; ++j) {
        roff[j] = roff_el * 2;
        rbytes[j] = static_cast<std::size_t>(B * member_tokens(j)) * row * 2;
        roff_el += static_cast<std::size_t>(B * member_tokens(j)) * row;
      }
      recvb.assign(roff_el, 0);
      if (deg == 1) {
        recvb = sendb;
      } else if (auto r = g.world->all_to_all_v(g.group, sendb.data(), sbytes, soff, recvb.data(), rbytes, roff); !r) {
        return r.err();
      }
    }
    for (int b = 0; b < B; ++b) {
      for (int j = 0; j < deg; ++j) {
        const std::int64_t nj = member_tokens(j);
        const std::uint16_t* src = recvb.data() + roff[j] / 2 + static_cast<std::size_t>(b * nj) * 3 * HL * D;
        for (std::int64_t l = 0; l < nj; ++l) {
          const std::int64_t gi = global_index(j, l);
          for (int part = 0; part < 3; ++part) {
            float* dst = (part == 0 ? q : part == 1 ? k : v).data() + gi * HL * D;
            for (int e = 0; e < HL * D; ++e) dst[e] = from_bf16(*src++);
          }
        }
      }
      attention_cpu(q.data(), k.data(), v.data(), &o[static_cast<std::size_t>(b) * N * HL * D], static_cast<int>(N), HL,
                    D);
    }
    // Heads -> tokens: member j gets its tokens' outputs of my heads.
    {
      const std::size_t row = static_cast<std::size_t>(HL) * D;
      std::size_t off = 0;
      sendb.assign(static_cast<std::size_t>(B * N) * row, 0);
      for (int j = 0; j < deg; ++j) {
        soff[j] = off * 2;
        const std::int64_t nj = member_tokens(j);
        for (int b = 0; b < B; ++b)
          for (std::int64_t l = 0; l < nj; ++l) {
            const float* src = &o[(static_cast<std::size_t>(b) * N + global_index(j, l)) * row];
            for (std::size_t e = 0; e < row; ++e) sendb[off++] = to_bf16(src[e]);
          }
        sbytes[j] = off * 2 - soff[j];
        roff[j] = static_cast<std::size_t>(j) * B * n * row * 2;
        rbytes[j] = static_cast<std::size_t>(B * n) * row * 2;
      }
      recvb.assign(static_cast<std::size_t>(deg * B * n) * row, 0);
      if (deg == 1) {
        recvb = sendb;
      } else if (auto r = g.world->all_to_all_v(g.group, sendb.data(), sbytes, soff, recvb.data(), rbytes, roff); !r) {
        return r.err();
      }
      for (int j = 0; j < deg; ++j)
        for (int b = 0; b < B; ++b)
          for (std::int64_t l = 0; l < n; ++l) {
            const std::uint16_t* src = recvb.data() + roff[j] / 2 + (static_cast<std::size_t>(b * n + l)) * row;
            float* dst = &o_local[(b * n + l) * H + j * HL * D];
            for (std::size_t e = 0; e < row; ++e) dst[e] = from_bf16(src[e]);
          }
    }
    // Projection, gated residual, then the MLP half.
    for (int b = 0; b < B; ++b) {
      const float* md = &mod[b * 6 * H];
      float* xb = &x[b * n * H];
      linear(W.proj, &o_local[b * n * H], n, y2.data());
      for (std::int64_t l = 0; l < n; ++l)
        for (int i = 0; i < H; ++i) xb[l * H + i] += md[2 * H + i] * y2[l * H + i];
      for (std::int64_t l = 0; l < n; ++l)
        modulated_norm(&xb[l * H], H, md + 3 * H, md + 4 * H, &hn[l * H], tmp.data());
      linear(W.fc1, hn.data(), n, y.data());
      for (std::int64_t i = 0; i < n * M; ++i) y[i] = round_bf16(gelu_tanh(y[i]));
      linear(W.fc2, y.data(), n, y2.data());
      for (std::int64_t l = 0; l < n; ++l)
        for (int i = 0; i < H; ++i) xb[l * H + i] += md[5 * H + i] * y2[l * H + i];
    }
  }

  // Final layer on the image tokens: modulated norm, linear to patch values (kept fp32).
  vec fmod(static_cast<std::size_t>(B) * 2 * H);
  linear(m.final_ada(), silu_c.data(), B, fmod.data());
  std::vector<float> out(static_cast<std::size_t>(B * img.count * P));
  const linear_ref& F = m.final_linear();
  for (int b = 0; b < B; ++b)
    for (std::int64_t l = 0; l < img.count; ++l) {
      modulated_norm(&x[(b * n + txt.count + l) * H], H, &fmod[b * 2 * H], &fmod[b * 2 * H + H], hn.data(), tmp.data());
      float* dst = &out[(b * img.count + l) * P];
      for (int o2 = 0; o2 < P; ++o2) dst[o2] = dot(hn.data(), F.w + static_cast<std::int64_t>(o2) * H, H) + F.b[o2];
    }
  return out;
}

}  // namespace gfdit::dit
