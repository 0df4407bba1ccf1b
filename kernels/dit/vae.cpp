#include "kernels/dit/vae.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "common/text.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/safetensors.hpp"

namespace gfdit::dit {

namespace fs = std::filesystem;

namespace {

constexpr float norm_eps = 1e-6f;  // every GroupNorm of the decoder
constexpr int max_latent_side = 512;

// --- config.json ---------------------------------------------------------------------------

result<int> int_field(const nlohmann::json& j, const char* key, int fallback, int lo, int hi) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number_integer())
    return make_error(errc::invalid_argument, std::string("field '") + key + "': not an integer");
  const auto x = v.get<std::int64_t>();
  if (x < lo || x > hi)
    return make_error(errc::invalid_argument, std::string("field '") + key + "': " + std::to_string(x) +
                                                  " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(x);
}

result<bool> bool_field(const nlohmann::json& j, const char* key, bool fallback) {
  if (!j.contains(key)) return fallback;
  if (!j.at(key).is_boolean())
    return make_error(errc::invalid_argument, std::string("field '") + key + "': not a boolean");
  return j.at(key).get<bool>();
}

// null counts as absent: diffusers writes "shift_factor": null for SD.
result<float> float_field(const nlohmann::json& j, const char* key, float fallback) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  if (!j.at(key).is_number())
    return make_error(errc::invalid_argument, std::string("field '") + key + "': not a number");
  const double x = j.at(key).get<double>();
  if (!std::isfinite(x) || std::abs(x) > 1e30)
    return make_error(errc::invalid_argument, std::string("field '") + key + "': not a finite float");
  return static_cast<float>(x);
}

// --- the arithmetic ------------------------------------------------------------------------

// R x S dot products at once (rows of a against rows of b, all n long), lane for lane the sums
// dot() forms: each loaded value serves several outputs, and the bits are dot()'s.
template <int R, int S>
void dot_tile(const float* a, const float* b, int n, float* c, std::ptrdiff_t si, std::ptrdiff_t sj) {
  float l[R][S][8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s)
        for (int q = 0; q < 8; ++q)
          l[r][s][q] += a[r * static_cast<std::ptrdiff_t>(n) + i + q] * b[s * static_cast<std::ptrdiff_t>(n) + i + q];
  for (int q = 0; i < n; ++i, ++q)
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s)
        l[r][s][q] += a[r * static_cast<std::ptrdiff_t>(n) + i] * b[s * static_cast<std::ptrdiff_t>(n) + i];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) {
      const float* x = l[r][s];
      c[r * si + s * sj] = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
    }
}

// c[i * si + j * sj] = dot(a_i, b_j, k) for a [m][k] and b [n][k], row-major. Every entry is
// exactly dot()'s, whatever the tiling, so conv and linear bits do not depend on the shape.
void matmul_nt(const float* a, int m, const float* b, int n, int k, float* c, std::ptrdiff_t si, std::ptrdiff_t sj) {
  const auto row = [k](const float* base, int i) { return base + static_cast<std::ptrdiff_t>(i) * k; };
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    int j = 0;
    for (; j + 4 <= n; j += 4) dot_tile<4, 4>(row(a, i), row(b, j), k, c + i * si + j * sj, si, sj);
    for (; j < n; ++j)
      for (int r = 0; r < 4; ++r) c[(i + r) * si + j * sj] = dot(row(a, i + r), row(b, j), k);
  }
  for (; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * si + j * sj] = dot(row(a, i), row(b, j), k);
}

// Fixed-order sums over one channel row: 8 float lanes, combined as dot() combines them.
float lane_sum(const float* x, int n, float center, bool square) {
  float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int q = 0; q < 8; ++q) {
      const float d = x[i + q] - center;
      l[q] += square ? d * d : d;
    }
  for (int q = 0; i < n; ++i, ++q) {
    const float d = x[i] - center;
    l[q] += square ? d * d : d;
  }
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// out[o][p] = bias[o] + dot(weight[o], window(p)), the window being the input values under the
// kernel at pixel p in the weight's (in, ky, kx) order, zero outside the map (padding k / 2).
// Windows are gathered for a tile of pixels at a time, so the scratch stays cache-sized.
void conv2d(const float* w, const float* bias, int out, int in, int k, const float* x, int h, int wd, float* y) {
  const int kk = in * k * k, pad = k / 2, pixels = h * wd;
  constexpr int tile = 32;
  std::vector<float> col(static_cast<std::size_t>(tile) * kk);
  for (int p0 = 0; p0 < pixels; p0 += tile) {
    const int n = std::min(tile, pixels - p0);
    for (int p = 0; p < n; ++p) {
      const int py = (p0 + p) / wd, px = (p0 + p) % wd;
      float* r = col.data() + static_cast<std::ptrdiff_t>(p) * kk;
      for (int i = 0; i < in; ++i) {
        const float* xc = x + static_cast<std::ptrdiff_t>(i) * pixels;
        for (int dy = 0; dy < k; ++dy)
          for (int dx = 0; dx < k; ++dx) {
            const int sy = py + dy - pad, sx = px + dx - pad;
            *r++ = sy >= 0 && sy < h && sx >= 0 && sx < wd ? xc[sy * wd + sx] : 0.0f;
          }
      }
    }
    matmul_nt(w, out, col.data(), n, kk, y + p0, pixels, 1);
  }
  for (int o = 0; o < out; ++o)
    for (int p = 0; p < pixels; ++p) y[static_cast<std::ptrdiff_t>(o) * pixels + p] += bias[o];
}

// GroupNorm (eps 1e-6, biased variance, two passes) with SiLU after it when `act`. Channel rows
// are summed in 8 fixed lanes, the rows of a group in double, in channel order.
std::vector<float> group_norm(const std::vector<float>& x, int c, int pixels, int groups,
                              const std::vector<float>& gamma, const std::vector<float>& beta, bool act) {
  std::vector<float> y(x.size());
  const int per = c / groups;
  const double count = static_cast<double>(per) * pixels;
  for (int g = 0; g < groups; ++g) {
    const float* base = x.data() + static_cast<std::ptrdiff_t>(g) * per * pixels;
    double sum = 0;
    for (int i = 0; i < per; ++i) sum += lane_sum(base + static_cast<std::ptrdiff_t>(i) * pixels, pixels, 0.0f, false);
    const auto mean = static_cast<float>(sum / count);
    double sq = 0;
    for (int i = 0; i < per; ++i) sq += lane_sum(base + static_cast<std::ptrdiff_t>(i) * pixels, pixels, mean, true);
    const auto rstd = static_cast<float>(1.0 / std::sqrt(sq / count + norm_eps));
    for (int i = 0; i < per; ++i) {
      const int ch = g * per + i;
      const float scale = rstd * gamma[ch], shift = beta[ch];
      const float* src = base + static_cast<std::ptrdiff_t>(i) * pixels;
      float* dst = y.data() + static_cast<std::ptrdiff_t>(ch) * pixels;
      for (int p = 0; p < pixels; ++p) {
        const float v = (src[p] - mean) * scale + shift;
        dst[p] = act ? silu(v) : v;
      }
    }
  }
  return y;
}

}  // namespace

// --- config --------------------------------------------------------------------------------

result<void> validate(const vae_config& c) {
  const auto bad = [](const std::string& what) { return make_error(errc::invalid_argument, what); };
  if (c.block_out_channels.empty() || c.block_out_channels.size() > 8)
    return bad("field 'block_out_channels': needs 1..8 entries, has " + std::to_string(c.block_out_channels.size()));
  if (c.norm_num_groups < 1) return bad("field 'norm_num_groups': must be positive");
  for (int ch : c.block_out_channels) {
    if (ch < 1 || ch > 4096)
      return bad("field 'block_out_channels': entry " + std::to_string(ch) + " is outside 1..4096");
    if (ch % c.norm_num_groups)
      return bad("field 'norm_num_groups': " + std::to_string(c.norm_num_groups) +
                 " does not divide block_out_channels entry " + std::to_string(ch));
  }
  if (c.latent_channels < 1 || c.latent_channels > 256) return bad("field 'latent_channels': outside 1..256");
  if (c.out_channels < 1 || c.out_channels > 64) return bad("field 'out_channels': outside 1..64");
  if (c.layers_per_block < 0 || c.layers_per_block > 16) return bad("field 'layers_per_block': outside 0..16");
  if (!(c.scaling_factor > 0) || !std::isfinite(c.scaling_factor))
    return bad("field 'scaling_factor': must be a positive finite number");
  if (!std::isfinite(c.shift_factor)) return bad("field 'shift_factor': not finite");
  return {};
}

result<vae_config> vae_config_from_json(std::string_view text, const std::string& where) {
  const auto fail = [&](const error& e) { return make_error(e.code, where + ": " + e.what); };
  vae_config c;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, where + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_object()) return make_error(errc::decode_failed, where + ": not a JSON object");
  // Another autoencoder's config would parse, and then decode garbage.
  if (j.contains("_class_name") && j.at("_class_name") != "AutoencoderKL")
    return make_error(errc::invalid_argument,
                      where + ": field '_class_name': " + j.at("_class_name").dump() + " is not AutoencoderKL");
  if (j.contains("act_fn") && j.at("act_fn") != "silu")
    return make_error(errc::invalid_argument, where + ": field 'act_fn': " + j.at("act_fn").dump() + " (only silu)");
  const auto read_int = [&](const char* key, int& out, int lo, int hi) -> result<void> {
    auto v = int_field(j, key, out, lo, hi);
    if (!v) return fail(v.err());
    out = *v;
    return {};
  };
  for (auto r :
       {read_int("in_channels", c.in_channels, 1, 64), read_int("out_channels", c.out_channels, 1, 64),
        read_int("latent_channels", c.latent_channels, 1, 256), read_int("layers_per_block", c.layers_per_block, 0, 16),
        read_int("norm_num_groups", c.norm_num_groups, 1, 4096)})
    if (!r) return r.err();
  if (j.contains("block_out_channels")) {
    const auto& b = j.at("block_out_channels");
    if (!b.is_array()) return make_error(errc::invalid_argument, where + ": field 'block_out_channels': not an array");
    c.block_out_channels.clear();
    for (const auto& e : b) {
      if (!e.is_number_integer() || e.get<std::int64_t>() < 1 || e.get<std::int64_t>() > 4096)
        return make_error(errc::invalid_argument,
                          where + ": field 'block_out_channels': entry " + e.dump() + " is not an integer in 1..4096");
      c.block_out_channels.push_back(e.get<int>());
    }
  }
  auto scale = float_field(j, "scaling_factor", c.scaling_factor);
  if (!scale) return fail(scale.err());
  c.scaling_factor = *scale;
  auto shift = float_field(j, "shift_factor", c.shift_factor);
  if (!shift) return fail(shift.err());
  c.shift_factor = *shift;
  auto post = bool_field(j, "use_post_quant_conv", c.use_post_quant_conv);
  if (!post) return fail(post.err());
  c.use_post_quant_conv = *post;
  auto attn = bool_field(j, "mid_block_add_attention", c.mid_block_add_attention);
  if (!attn) return fail(attn.err());
  c.mid_block_add_attention = *attn;
  if (auto v = validate(c); !v) return fail(v.err());
  if (j.contains("up_block_types")) {
    const auto& u = j.at("up_block_types");
    if (!u.is_array() || u.size() != c.block_out_channels.size())
      return make_error(errc::invalid_argument,
                        where + ": field 'up_block_types': needs one entry per block_out_channels entry");
    for (const auto& e : u)
      if (e != "UpDecoderBlock2D")
        return make_error(errc::invalid_argument,
                          where + ": field 'up_block_types': " + e.dump() + " (only UpDecoderBlock2D)");
  }
  return c;
}

std::vector<tensor_spec> vae_decoder_specs(const vae_config& c) {
  std::vector<tensor_spec> v;
  const auto conv = [&](const std::string& n, std::int64_t out, std::int64_t in, std::int64_t k) {
    v.push_back({n + ".weight", {out, in, k, k}});
    v.push_back({n + ".bias", {out}});
  };
  const auto norm = [&](const std::string& n, std::int64_t ch) {
    v.push_back({n + ".weight", {ch}});
    v.push_back({n + ".bias", {ch}});
  };
  const auto linear = [&](const std::string& n, std::int64_t ch) {
    v.push_back({n + ".weight", {ch, ch}});
    v.push_back({n + ".bias", {ch}});
  };
  const auto resnet = [&](const std::string& n, std::int64_t in, std::int64_t out) {
    norm(n + ".norm1", in);
    conv(n + ".conv1", out, in, 3);
    norm(n + ".norm2", out);
    conv(n + ".conv2", out, out, 3);
    if (in != out) conv(n + ".conv_shortcut", out, in, 1);
  };
  const std::int64_t top = c.block_out_channels.back();
  if (c.use_post_quant_conv) conv("post_quant_conv", c.latent_channels, c.latent_channels, 1);
  conv("decoder.conv_in", top, c.latent_channels, 3);
  resnet("decoder.mid_block.resnets.0", top, top);
  if (c.mid_block_add_attention) {
    const std::string a = "decoder.mid_block.attentions.0";
    norm(a + ".group_norm", top);
    for (const char* p : {".to_q", ".to_k", ".to_v", ".to_out.0"}) linear(a + p, top);
  }
  resnet("decoder.mid_block.resnets.1", top, top);
  std::int64_t prev = top;
  const int blocks = static_cast<int>(c.block_out_channels.size());
  for (int i = 0; i < blocks; ++i) {
    const std::int64_t out = c.block_out_channels[blocks - 1 - i];
    const std::string b = "decoder.up_blocks." + std::to_string(i);
    for (int r = 0; r <= c.layers_per_block; ++r) resnet(b + ".resnets." + std::to_string(r), r == 0 ? prev : out, out);
    if (i + 1 < blocks) conv(b + ".upsamplers.0.conv", out, out, 3);
    prev = out;
  }
  norm("decoder.conv_norm_out", c.block_out_channels.front());
  conv("decoder.conv_out", c.out_channels, c.block_out_channels.front(), 3);
  return v;
}

// --- loading -------------------------------------------------------------------------------

namespace {

// diffusers renames the mid-block attention's old names when it loads a file; so do we.
std::string old_attention_name(const std::string& name) {
  static const std::pair<const char*, const char*> renames[] = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  if (name.find(".attentions.") == std::string::npos) return {};
  for (const auto& [now, old] : renames)
    if (auto at = name.find(now); at != std::string::npos)
      return name.substr(0, at) + old + name.substr(at + std::strlen(now));
  return {};
}

bool decoder_tensor(const std::string& name) {
  return name.starts_with("decoder.") || name.starts_with("post_quant_conv.");
}

}  // namespace

result<vae_decoder> vae_decoder::load(const fs::path& dir) {
  const fs::path config_file = dir / "config.json", weights = dir / "diffusion_pytorch_model.safetensors";
  if (!fs::exists(config_file)) return make_error(errc::not_found, "vae " + dir.string() + ": no config.json");
  auto text = read_text(config_file, 1u << 20);
  if (!text) return make_error(text.err().code, "vae config " + text.err().what);
  auto cfg = vae_config_from_json(*text, config_file.string());
  if (!cfg) return cfg.err();

  const auto fail = [&](const std::string& what) {
    return make_error(errc::invalid_argument, "vae weights " + weights.string() + ": " + what);
  };
  auto file = read_safetensors(weights);
  if (!file) return make_error(file.err().code, "vae weights: " + file.err().what);
  std::map<std::string, std::vector<float>> t;
  std::set<std::string> used;  // file names consumed (old attention names included)
  for (const auto& s : vae_decoder_specs(*cfg)) {
    std::string name = s.name;
    auto it = file->tensors.find(name);
    if (it == file->tensors.end()) {
      if (const std::string old = old_attention_name(name); !old.empty()) it = file->tensors.find(name = old);
      if (it == file->tensors.end()) return fail("missing tensor " + s.name);
    }
    st_tensor& x = it->second;
    if (x.dtype != "F32" && x.dtype != "F16" && x.dtype != "BF16")
      return fail(name + ": dtype " + x.dtype + " (weights are F32, F16 or BF16)");
    if (x.shape != s.shape)
      return fail(name + ": wrong shape " + shape_text(x.shape) + " (expected " + shape_text(s.shape) + ")");
    for (std::size_t i = 0; i < x.values.size(); ++i)
      if (!std::isfinite(x.values[i])) return fail(name + ": element " + std::to_string(i) + " is not finite");
    used.insert(it->first);
    t.emplace(s.name, std::move(x.values));
  }
  // encoder.* and quant_conv.* belong to the other half of a full AutoencoderKL file.
  for (const auto& [name, x] : file->tensors) {
    if (used.count(name) || name.starts_with("encoder.") || name.starts_with("quant_conv.")) continue;
    return fail("unexpected tensor " + name +
                (decoder_tensor(name) ? " (not part of this config's decoder)" : " (not an AutoencoderKL tensor)"));
  }
  return from_tensors(*cfg, std::move(t), weights.string());
}

result<vae_decoder> vae_decoder::from_tensors(const vae_config& c, std::map<std::string, std::vector<float>> t,
                                              const std::string& where) {
  if (auto v = validate(c); !v) return make_error(v.err().code, where + ": " + v.err().what);
  for (const auto& s : vae_decoder_specs(c)) {
    auto it = t.find(s.name);
    if (it == t.end()) return make_error(errc::invalid_argument, where + ": missing tensor " + s.name);
    if (static_cast<std::int64_t>(it->second.size()) != s.numel())
      return make_error(errc::invalid_argument, where + ": wrong size for " + s.name);
  }
  const auto take = [&](const std::string& n) { return std::move(t.at(n)); };
  const auto conv_of = [&](const std::string& n, int out, int in, int k) {
    return conv{out, in, k, take(n + ".weight"), take(n + ".bias")};
  };
  const auto norm_of = [&](const std::string& n) { return norm{take(n + ".weight"), take(n + ".bias")}; };
  const auto linear_of = [&](const std::string& n, int ch) {
    return linear{ch, ch, take(n + ".weight"), take(n + ".bias")};
  };
  const auto resnet_of = [&](const std::string& n, int in, int out) {
    resnet r{norm_of(n + ".norm1"),
             norm_of(n + ".norm2"),
             conv_of(n + ".conv1", out, in, 3),
             conv_of(n + ".conv2", out, out, 3),
             {}};
    if (in != out) r.shortcut = conv_of(n + ".conv_shortcut", out, in, 1);
    return r;
  };

  vae_decoder d;
  d.config_ = c;
  const int top = c.block_out_channels.back();
  if (c.use_post_quant_conv) d.post_quant_conv_ = conv_of("post_quant_conv", c.latent_channels, c.latent_channels, 1);
  d.conv_in_ = conv_of("decoder.conv_in", top, c.latent_channels, 3);
  d.mid_resnet0_ = resnet_of("decoder.mid_block.resnets.0", top, top);
  if (c.mid_block_add_attention) {
    const std::string a = "decoder.mid_block.attentions.0";
    d.mid_attention_ = attention{norm_of(a + ".group_norm"), linear_of(a + ".to_q", top), linear_of(a + ".to_k", top),
                                 linear_of(a + ".to_v", top), linear_of(a + ".to_out.0", top)};
  }
  d.mid_resnet1_ = resnet_of("decoder.mid_block.resnets.1", top, top);
  int prev = top;
  const int blocks = static_cast<int>(c.block_out_channels.size());
  for (int i = 0; i < blocks; ++i) {
    const int out = c.block_out_channels[blocks - 1 - i];
    const std::string b = "decoder.up_blocks." + std::to_string(i);
    up_block u;
    for (int r = 0; r <= c.layers_per_block; ++r)
      u.resnets.push_back(resnet_of(b + ".resnets." + std::to_string(r), r == 0 ? prev : out, out));
    if (i + 1 < blocks) u.upsampler = conv_of(b + ".upsamplers.0.conv", out, out, 3);
    d.up_blocks_.push_back(std::move(u));
    prev = out;
  }
  d.norm_out_ = norm_of("decoder.conv_norm_out");
  d.conv_out_ = conv_of("decoder.conv_out", c.out_channels, c.block_out_channels.front(), 3);
  return d;
}

// --- the forward ---------------------------------------------------------------------------

struct vae_decoder::fmap {
  int c = 0, h = 0, w = 0;
  std::vector<float> v;  // [c][h][w]
  fmap() = default;
  fmap(int c_, int h_, int w_) : c(c_), h(h_), w(w_), v(static_cast<std::size_t>(c_) * h_ * w_) {}
  int pixels() const noexcept { return h * w; }
  float* channel(int i) noexcept { return v.data() + static_cast<std::ptrdiff_t>(i) * pixels(); }
  const float* channel(int i) const noexcept { return v.data() + static_cast<std::ptrdiff_t>(i) * pixels(); }
};

vae_decoder::fmap vae_decoder::run_resnet(const resnet& r, const fmap& x) const {
  const int groups = config_.norm_num_groups;
  fmap h(r.conv1.out, x.h, x.w), y(r.conv2.out, x.h, x.w);
  const auto a = group_norm(x.v, x.c, x.pixels(), groups, r.norm1.gamma, r.norm1.beta, true);
  conv2d(r.conv1.w.data(), r.conv1.b.data(), r.conv1.out, r.conv1.in, 3, a.data(), x.h, x.w, h.v.data());
  const auto b = group_norm(h.v, h.c, h.pixels(), groups, r.norm2.gamma, r.norm2.beta, true);
  conv2d(r.conv2.w.data(), r.conv2.b.data(), r.conv2.out, r.conv2.in, 3, b.data(), x.h, x.w, y.v.data());
  if (r.shortcut) {
    fmap s(r.shortcut->out, x.h, x.w);
    conv2d(r.shortcut->w.data(), r.shortcut->b.data(), r.shortcut->out, r.shortcut->in, 1, x.v.data(), x.h, x.w,
           s.v.data());
    for (std::size_t i = 0; i < y.v.size(); ++i) y.v[i] = s.v[i] + y.v[i];
  } else {
    for (std::size_t i = 0; i < y.v.size(); ++i) y.v[i] = x.v[i] + y.v[i];
  }
  return y;
}

// One head of dim C over the h*w tokens: softmax(q k^T / sqrt(C)) v, then to_out, plus the input.
// Scores are formed for a block of queries at a time, so memory stays O(block * tokens).
vae_decoder::fmap vae_decoder::run_attention(const attention& a, const fmap& x) const {
  const int c = x.c, tokens = x.pixels();
  const auto xn = group_norm(x.v, c, tokens, config_.norm_num_groups, a.group_norm.gamma, a.group_norm.beta, false);
  std::vector<float> xt(xn.size());  // [tokens][c]
  for (int ch = 0; ch < c; ++ch)
    for (int t = 0; t < tokens; ++t)
      xt[static_cast<std::size_t>(t) * c + ch] = xn[static_cast<std::size_t>(ch) * tokens + t];
  const auto tokens_major = [&](const linear& l) {  // [tokens][c]
    std::vector<float> y(xt.size());
    matmul_nt(xt.data(), tokens, l.w.data(), c, c, y.data(), c, 1);
    for (int t = 0; t < tokens; ++t)
      for (int o = 0; o < c; ++o) y[static_cast<std::size_t>(t) * c + o] += l.b[o];
    return y;
  };
  const auto q = tokens_major(a.q), k = tokens_major(a.k);
  std::vector<float> vt(xt.size());  // [c][tokens]: each output channel is a dot over the keys
  matmul_nt(a.v.w.data(), c, xt.data(), tokens, c, vt.data(), tokens, 1);
  for (int o = 0; o < c; ++o)
    for (int t = 0; t < tokens; ++t) vt[static_cast<std::size_t>(o) * tokens + t] += a.v.b[o];

  const float scale = 1.0f / std::sqrt(static_cast<float>(c));
  constexpr int block = 32;
  std::vector<float> s(static_cast<std::size_t>(block) * tokens), o(xt.size());  // o: [tokens][c]
  for (int q0 = 0; q0 < tokens; q0 += block) {
    const int n = std::min(block, tokens - q0);
    matmul_nt(q.data() + static_cast<std::size_t>(q0) * c, n, k.data(), tokens, c, s.data(), tokens, 1);
    for (int i = 0; i < n; ++i) {
      float* row = s.data() + static_cast<std::size_t>(i) * tokens;
      float mx = -INFINITY;
      for (int t = 0; t < tokens; ++t) mx = std::max(mx, row[t] * scale);
      for (int t = 0; t < tokens; ++t) row[t] = std::exp(row[t] * scale - mx);
      const float inv = 1.0f / lane_sum(row, tokens, 0.0f, false);
      for (int t = 0; t < tokens; ++t) row[t] *= inv;
    }
    matmul_nt(s.data(), n, vt.data(), c, tokens, o.data() + static_cast<std::size_t>(q0) * c, c, 1);
  }
  fmap y(c, x.h, x.w);  // to_out straight into [c][tokens], then the residual
  matmul_nt(a.o.w.data(), c, o.data(), tokens, c, y.v.data(), tokens, 1);
  for (int ch = 0; ch < c; ++ch)
    for (int t = 0; t < tokens; ++t) {
      const std::size_t i = static_cast<std::size_t>(ch) * tokens + t;
      y.v[i] = x.v[i] + (y.v[i] + a.o.b[ch]);
    }
  return y;
}

result<std::vector<float>> vae_decoder::decode(std::span<const float> latent, int h, int w) const {
  const int lc = config_.latent_channels;
  if (h < 1 || w < 1 || h > max_latent_side || w > max_latent_side)
    return make_error(errc::invalid_argument, "vae decode: latent size " + std::to_string(h) + "x" + std::to_string(w) +
                                                  " (each side 1.." + std::to_string(max_latent_side) + ")");
  const std::size_t want = static_cast<std::size_t>(lc) * h * w;
  if (latent.size() != want)
    return make_error(errc::invalid_argument, "vae decode: latent has " + std::to_string(latent.size()) +
                                                  " values, expected " + std::to_string(want) + " (" +
                                                  std::to_string(lc) + " x " + std::to_string(h) + " x " +
                                                  std::to_string(w) + ")");
  fmap z(lc, h, w);
  for (std::size_t i = 0; i < want; ++i) {
    if (!std::isfinite(latent[i]))
      return make_error(errc::invalid_argument, "vae decode: latent element " + std::to_string(i) + " is not finite");
    z.v[i] = latent[i] / config_.scaling_factor + config_.shift_factor;
  }
  const auto apply = [](const conv& cv, const fmap& x) {
    fmap y(cv.out, x.h, x.w);
    conv2d(cv.w.data(), cv.b.data(), cv.out, cv.in, cv.k, x.v.data(), x.h, x.w, y.v.data());
    return y;
  };
  if (post_quant_conv_) z = apply(*post_quant_conv_, z);
  fmap x = apply(conv_in_, z);
  x = run_resnet(mid_resnet0_, x);
  if (mid_attention_) x = run_attention(*mid_attention_, x);
  x = run_resnet(mid_resnet1_, x);
  for (const auto& u : up_blocks_) {
    for (const auto& r : u.resnets) x = run_resnet(r, x);
    if (u.upsampler) {
      fmap up(x.c, 2 * x.h, 2 * x.w);  // nearest: each value fills a 2x2 block
      for (int ch = 0; ch < x.c; ++ch)
        for (int y = 0; y < up.h; ++y)
          for (int xx = 0; xx < up.w; ++xx) up.channel(ch)[y * up.w + xx] = x.channel(ch)[(y / 2) * x.w + xx / 2];
      x = apply(*u.upsampler, up);
    }
  }
  fmap act(x.c, x.h, x.w);
  act.v = group_norm(x.v, x.c, x.pixels(), config_.norm_num_groups, norm_out_.gamma, norm_out_.beta, true);
  return std::move(apply(conv_out_, act).v);
}

}  // namespace gfdit::dit
