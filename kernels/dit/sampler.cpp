#include "kernels/dit/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/dit/forward.hpp"
#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

namespace {

constexpr int train_steps = 1000;

double flow_sigma(const request& r, int i) {  // sigma at step i (i == steps gives 0)
  const double t = 1.0 - static_cast<double>(i) / r.steps;
  return r.shift * t / (1.0 + (r.shift - 1.0) * t);
}

double alpha_bar(int t) {  // DiT's linear betas 1e-4..0.02; product in a fixed order
  if (t < 0) return 1.0;
  double a = 1.0;
  for (int s = 0; s <= t; ++s) a *= 1.0 - (1e-4 + (0.02 - 1e-4) * s / (train_steps - 1));
  return a;
}

int ddim_t(const request& r, int i) {  // timesteps step_ratio*(steps-1-i), as in diffusers
  return (r.steps - 1 - i) * (train_steps / r.steps);
}

// One step's update of a latent x[n] from the model's conditional output (and, under CFG, the
// unconditional one): the Euler step of the flow, or DDIM's (eta 0).
void apply_step(const request& r, int i, const float* cond, const float* uncond, float* x, std::size_t n) {
  const float gs = r.guidance;
  if (r.sampler == sampler_kind::flow_euler) {
    const float dt = static_cast<float>(flow_sigma(r, i + 1) - flow_sigma(r, i));
    for (std::size_t e = 0; e < n; ++e) {
      const float v = uncond ? uncond[e] + gs * (cond[e] - uncond[e]) : cond[e];
      x[e] += dt * v;
    }
  } else {
    const double a = alpha_bar(ddim_t(r, i));
    const double ap = i + 1 < r.steps ? alpha_bar(ddim_t(r, i + 1)) : 1.0;
    const float sa = static_cast<float>(std::sqrt(a)), s1a = static_cast<float>(std::sqrt(1.0 - a));
    const float sap = static_cast<float>(std::sqrt(ap)), s1ap = static_cast<float>(std::sqrt(1.0 - ap));
    for (std::size_t e = 0; e < n; ++e) {
      const float eps = uncond ? uncond[e] + gs * (cond[e] - uncond[e]) : cond[e];
      const float x0 = (x[e] - s1a * eps) / sa;
      x[e] = sap * x0 + s1ap * eps;
    }
  }
}

}  // namespace

result<void> validate(const model_config& c, const request& r) {
  if (r.steps < 1 || r.steps > train_steps)
    return make_error(errc::invalid_argument, "dit request: steps must be 1..1000");
  if (!(r.shift > 0.0f)) return make_error(errc::invalid_argument, "dit request: shift must be positive");
  if (c.cond == conditioning::class_label && (r.class_label < 0 || r.class_label >= c.num_classes))
    return make_error(errc::invalid_argument, "dit request: class label out of range");
  if (c.cond == conditioning::text &&
      static_cast<std::int64_t>(r.text.size()) != static_cast<std::int64_t>(c.text_tokens) * c.text_dim)
    return make_error(errc::invalid_argument, "dit request: text embeddings must be text_tokens x text_dim");
  return {};
}

double step_time(const request& r, int i) {
  return r.sampler == sampler_kind::flow_euler ? flow_sigma(r, i) * train_steps : ddim_t(r, i);
}

std::vector<float> initial_latent(const model_config& c, const request& r, int degree, int index) {
  const auto s = token_shard(c.image_tokens(), degree, index);
  const int P = c.patch_dim();
  std::vector<float> x(static_cast<std::size_t>(s.count * P));
  const std::uint64_t stream = splitmix64(r.seed ^ 0x6e6f697365ull);  // "noise"
  for (std::int64_t l = 0; l < s.count; ++l)
    for (int j = 0; j < P; ++j)
      x[l * P + j] = counter_normal(stream, static_cast<std::uint64_t>((s.begin + l) * P + j));
  return x;
}

result<void> denoise(const model& m, const request& r, int begin, int end, const sp_group& g,
                     std::vector<float>& shard) {
  return denoise_with([&m](const forward_input& in, const sp_group& sg) { return forward_cpu(m, in, sg); },
                      [&g](const float* mine, float* both, std::size_t bytes) {
                        return g.world->all_gather(g.cfg_pair, mine, both, bytes);
                      },
                      m.config(), r, begin, end, g, shard);
}

result<void> denoise_with(const step_forward& forward, const pair_gather& gather, const model_config& c,
                          const request& r, int begin, int end, const sp_group& g, std::vector<float>& shard) {
  if (auto v = validate(c, r); !v) return v;
  if (begin < 0 || end > r.steps || begin > end)
    return make_error(errc::invalid_argument, "dit denoise: step range outside [0, steps]");
  const auto mine = token_shard(c.image_tokens(), g.degree(), g.index());
  const std::size_t sz = static_cast<std::size_t>(mine.count * c.patch_dim());
  if (shard.size() != sz)
    return make_error(errc::invalid_argument, "dit denoise: latent shard has the wrong size for this rank");

  const bool cfg = r.guidance > 1.0f;
  const bool split = cfg && g.cfg_parallel;
  if (g.cfg_parallel && (!g.world || g.cfg_pair.size() != 2 || !g.cfg_pair.is_member()))
    return make_error(errc::invalid_argument, "dit denoise: cfg_pair must be a group of two holding this rank");
  // Batched CFG: sample 0 conditional, sample 1 unconditional. CFG-parallel: one sample here,
  // which one by my place in the pair; outputs are exchanged after the forward. A sample's bits
  // do not depend on the batch it runs in, so both give the same result.
  const int B = cfg && !split ? 2 : 1;
  const bool uncond_only = split && g.cfg_pair.self() == 1;
  std::vector<int> labels;
  std::vector<float> text;
  if (c.cond == conditioning::class_label) {
    labels = {uncond_only ? c.num_classes : r.class_label, c.num_classes};
    labels.resize(B);
  } else {
    text = r.text;
    if (uncond_only) std::fill(text.begin(), text.end(), 0.0f);
    text.resize(static_cast<std::size_t>(B) * r.text.size(), 0.0f);
  }
  std::vector<float> image(B * sz), pair(split ? 2 * sz : 0);
  for (int i = begin; i < end; ++i) {
    for (int b = 0; b < B; ++b)
      std::copy(shard.begin(), shard.end(), image.begin() + static_cast<std::ptrdiff_t>(b * sz));
    const float t = static_cast<float>(step_time(r, i));
    const std::vector<float> ts(B, t);
    forward_input in{B, image, ts, labels, text};
    auto out = forward(in, g);
    if (!out) return out.err();
    if (out->size() != B * sz) return make_error(errc::state, "dit denoise: the forward returned the wrong size");
    if (split)
      if (auto st = gather(out->data(), pair.data(), sz * sizeof(float)); !st) return st.err();
    const std::vector<float>& o = split ? pair : *out;
    apply_step(r, i, o.data(), cfg ? o.data() + sz : nullptr, shard.data(), sz);
  }
  return {};
}

result<void> denoise_batch(const step_forward& forward, const model_config& c, std::span<const request> rs, int begin,
                           int end, std::vector<std::vector<float>>& latents) {
  const std::size_t n = rs.size();
  if (n == 0 || latents.size() != n)
    return make_error(errc::invalid_argument, "dit denoise_batch: one latent per request");
  const std::size_t sz = static_cast<std::size_t>(c.image_tokens() * c.patch_dim());
  for (std::size_t k = 0; k < n; ++k) {
    if (auto v = validate(c, rs[k]); !v) return v;
    if (rs[k].steps != rs[0].steps)
      return make_error(errc::invalid_argument, "dit denoise_batch: requests differ in steps");
    if (latents[k].size() != sz)
      return make_error(errc::invalid_argument, "dit denoise_batch: a latent has the wrong size");
  }
  if (begin < 0 || end > rs[0].steps || begin > end)
    return make_error(errc::invalid_argument, "dit denoise_batch: step range outside [0, steps]");
  // Samples: every request's conditional pass, then the unconditional passes of those under CFG.
  std::vector<std::size_t> uncond_of(n, 0), source;
  for (std::size_t k = 0; k < n; ++k) source.push_back(k);
  for (std::size_t k = 0; k < n; ++k)
    if (rs[k].guidance > 1.0f) {
      uncond_of[k] = source.size();
      source.push_back(k);
    }
  const int B = static_cast<int>(source.size());
  std::vector<int> labels;
  std::vector<float> text;
  for (int b = 0; b < B; ++b) {
    const request& r = rs[source[static_cast<std::size_t>(b)]];
    const bool null = static_cast<std::size_t>(b) >= n;
    if (c.cond == conditioning::class_label) {
      labels.push_back(null ? c.num_classes : r.class_label);
    } else {
      const std::size_t at = text.size();
      text.insert(text.end(), r.text.begin(), r.text.end());
      if (null) std::fill(text.begin() + static_cast<std::ptrdiff_t>(at), text.end(), 0.0f);
    }
  }
  std::vector<float> image(static_cast<std::size_t>(B) * sz), ts(static_cast<std::size_t>(B));
  for (int i = begin; i < end; ++i) {
    for (int b = 0; b < B; ++b) {
      const std::size_t k = source[static_cast<std::size_t>(b)];
      std::copy(latents[k].begin(), latents[k].end(), image.begin() + static_cast<std::ptrdiff_t>(b * sz));
      ts[static_cast<std::size_t>(b)] = static_cast<float>(step_time(rs[k], i));
    }
    auto out = forward(forward_input{B, image, ts, labels, text}, sp_group{});
    if (!out) return out.err();
    if (out->size() != B * sz) return make_error(errc::state, "dit denoise_batch: the forward returned the wrong size");
    for (std::size_t k = 0; k < n; ++k)
      apply_step(rs[k], i, out->data() + k * sz, rs[k].guidance > 1.0f ? out->data() + uncond_of[k] * sz : nullptr,
                 latents[k].data(), sz);
  }
  return {};
}

result<std::vector<float>> reshard(coll::World& w, const coll::Group& from, const coll::Group& to,
                                   const model_config& c, std::span<const float> shard) {
  const coll::token_layout layout{c.image_tokens(), static_cast<std::size_t>(c.patch_dim()) * sizeof(float)};
  std::vector<float> out;
  if (to.is_member())
    out.resize(static_cast<std::size_t>(coll::shard_rows(layout.tokens, to.size(), to.self()) * c.patch_dim()));
  if (from.is_member() && static_cast<std::int64_t>(shard.size()) !=
                              coll::shard_rows(layout.tokens, from.size(), from.self()) * c.patch_dim())
    return make_error(errc::invalid_argument, "dit reshard: source shard has the wrong size");
  if (auto r = w.reshard(from, to, layout, shard.data(), out.data()); !r) return r.err();
  return out;
}

result<parallel_layout> form_layout(coll::World& w, std::span<const std::int32_t> members, bool cfg_parallel,
                                    std::uint64_t epoch) {
  parallel_layout l;
  l.cfg_parallel = cfg_parallel;
  if (!cfg_parallel) {
    auto g = w.form(members, epoch);
    if (!g) return g.err();
    l.holder = *g;
    l.active = g->is_member();
    l.sp.world = &w;
    l.sp.group = *g;
    return l;
  }
  if (members.size() < 2 || members.size() % 2 != 0)
    return make_error(errc::invalid_argument, "dit layout: CFG-parallel needs an even number of members");
  const std::size_t half = members.size() / 2;
  auto gc = w.form(members.subspan(0, half), epoch, 0), gu = w.form(members.subspan(half), epoch + 1, 1);
  if (!gc) return gc.err();
  if (!gu) return gu.err();
  l.holder = *gc;
  l.uncond = *gu;
  l.active = gc->is_member() || gu->is_member();
  if (l.active) {
    const coll::Group& mine = gc->is_member() ? *gc : *gu;
    const std::int32_t pair[] = {members[static_cast<std::size_t>(mine.self())],
                                 members[half + static_cast<std::size_t>(mine.self())]};
    auto p = w.form(pair, epoch + 2, 2);
    if (!p) return p.err();
    l.sp = sp_group{&w, mine, true, *p};
  }
  return l;
}

std::vector<float> unpatchify(const model_config& c, std::span<const float> tokens) {
  const int C = c.latent_channels, pt = c.patch_t, ph = c.patch_h, pw = c.patch_w;
  std::vector<float> lat(static_cast<std::size_t>(C) * c.frames * c.height * c.width);
  for (std::int64_t tok = 0; tok < c.image_tokens(); ++tok) {
    const int gt = static_cast<int>(tok / (c.grid_h() * c.grid_w()));
    const int gh = static_cast<int>(tok / c.grid_w() % c.grid_h()), gw = static_cast<int>(tok % c.grid_w());
    int j = 0;  // patch vector order: (channel, dt, dh, dw)
    for (int ch = 0; ch < C; ++ch)
      for (int a = 0; a < pt; ++a)
        for (int b = 0; b < ph; ++b)
          for (int d = 0; d < pw; ++d, ++j) {
            const std::int64_t f = gt * pt + a, y = gh * ph + b, x = gw * pw + d;
            lat[((ch * c.frames + f) * c.height + y) * c.width + x] = tokens[tok * c.patch_dim() + j];
          }
  }
  return lat;
}

std::vector<float> patchify(const model_config& c, std::span<const float> lat) {
  const int C = c.latent_channels, pt = c.patch_t, ph = c.patch_h, pw = c.patch_w;
  std::vector<float> tokens(static_cast<std::size_t>(c.image_tokens() * c.patch_dim()));
  for (std::int64_t tok = 0; tok < c.image_tokens(); ++tok) {
    const int gt = static_cast<int>(tok / (c.grid_h() * c.grid_w()));
    const int gh = static_cast<int>(tok / c.grid_w() % c.grid_h()), gw = static_cast<int>(tok % c.grid_w());
    int j = 0;
    for (int ch = 0; ch < C; ++ch)
      for (int a = 0; a < pt; ++a)
        for (int b = 0; b < ph; ++b)
          for (int d = 0; d < pw; ++d, ++j) {
            const std::int64_t f = gt * pt + a, y = gh * ph + b, x = gw * pw + d;
            tokens[tok * c.patch_dim() + j] = lat[((ch * c.frames + f) * c.height + y) * c.width + x];
          }
  }
  return tokens;
}

std::vector<float> seeded_text(const model_config& c, std::uint64_t seed) {
  std::vector<float> t(static_cast<std::size_t>(c.text_tokens) * c.text_dim);
  const std::uint64_t stream = splitmix64(seed ^ 0x74657874ull);  // "text"
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = counter_normal(stream, i);
  return t;
}

}  // namespace gfdit::dit
