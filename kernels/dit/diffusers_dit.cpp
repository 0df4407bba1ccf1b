#include "kernels/dit/diffusers_dit.hpp"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/text.hpp"
#include "kernels/dit/safetensors.hpp"

namespace gfdit::dit {

namespace {

constexpr std::uintmax_t max_config_bytes = 1u << 20;

struct diffusers_shape {
  model_config cfg;
  int out_channels = 0;  // in_channels, or 2 * in_channels with learned sigma
};

// DiT's published sizes, for a readable name ("diffusers-dit-xl-2-256").
std::string size_name(int hidden, int depth, int heads) {
  if (hidden == 384 && depth == 12 && heads == 6) return "s";
  if (hidden == 768 && depth == 12 && heads == 12) return "b";
  if (hidden == 1024 && depth == 24 && heads == 16) return "l";
  if (hidden == 1152 && depth == 28 && heads == 16) return "xl";
  return std::to_string(hidden) + "x" + std::to_string(depth);
}

result<diffusers_shape> parse_config(const std::filesystem::path& path, int sample_size_override) {
  const auto fail = [&](errc e, const std::string& what) {
    return make_error(e, "diffusers dit config " + path.string() + ": " + what);
  };
  auto read = read_text(path, max_config_bytes);
  if (!read) return make_error(read.err().code, "diffusers dit config " + read.err().what);
  const std::string& text = *read;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return fail(errc::decode_failed, e.what());
  }
  if (!j.is_object()) return fail(errc::decode_failed, "not a JSON object");
  // Missing (or null) fields take DiTTransformer2DModel's defaults, as diffusers' from_config.
  std::string bad_field;
  const auto num = [&](const char* k, double dflt, bool nullable = false) -> double {
    if (!j.contains(k) || (j[k].is_null() && nullable)) return dflt;
    if (!j[k].is_number()) bad_field = k;
    return j[k].is_number() ? j[k].get<double>() : 0.0;
  };
  const auto str = [&](const char* k, const char* dflt) -> std::string {
    if (!j.contains(k)) return dflt;
    if (!j[k].is_string()) bad_field = k;
    return j[k].is_string() ? j[k].get<std::string>() : "";
  };
  const auto flag = [&](const char* k, bool dflt) -> bool {
    if (!j.contains(k)) return dflt;
    if (!j[k].is_boolean()) bad_field = k;
    return j[k].is_boolean() && j[k].get<bool>();
  };
  const std::string cls = str("_class_name", "DiTTransformer2DModel");
  const std::string norm_type = str("norm_type", "ada_norm_zero");
  const std::string act = str("activation_fn", "gelu-approximate");
  const double heads = num("num_attention_heads", 16), head_dim = num("attention_head_dim", 72);
  const double layers = num("num_layers", 28), patch = num("patch_size", 2);
  const double in_ch = num("in_channels", 4), out_ch = num("out_channels", in_ch, true);
  const double sample = num("sample_size", 32), classes = num("num_embeds_ada_norm", 1000, true);
  const double eps = num("norm_eps", 1e-5);
  const bool affine = flag("norm_elementwise_affine", false), bias = flag("attention_bias", true);
  if (!bad_field.empty()) return fail(errc::decode_failed, bad_field + " has the wrong JSON type");

  if (cls != "DiTTransformer2DModel" && cls != "Transformer2DModel")
    return fail(errc::invalid_argument, "_class_name '" + cls + "' is not a DiT (DiTTransformer2DModel)");
  if (norm_type != "ada_norm_zero")
    return fail(errc::invalid_argument,
                "norm_type '" + norm_type + "' is not supported (gfdit runs DiT's ada_norm_zero)");
  if (act != "gelu-approximate")
    return fail(errc::invalid_argument,
                "activation_fn '" + act + "' is not supported (gfdit's MLP is tanh-GELU, gelu-approximate)");
  if (affine)
    return fail(errc::invalid_argument, "norm_elementwise_affine true is not supported (gfdit's norms have no affine)");
  if (!bias) return fail(errc::invalid_argument, "attention_bias false is not supported (gfdit's qkv has biases)");
  // gfdit's MLP norm uses eps 1e-6 (DiT's); diffusers' norm3 uses norm_eps. Small values differ
  // by far less than bf16 rounding; a large one would change the model.
  if (!(eps >= 0 && eps <= 1e-4))
    return fail(errc::invalid_argument,
                "norm_eps " + std::to_string(eps) + " is not supported (gfdit uses 1e-6; at most 1e-4 is accepted)");
  const auto whole = [](double v) { return v == std::floor(v) && v >= 1 && v <= (1 << 20); };
  for (const auto& [k, v] : std::map<std::string, double>{{"num_attention_heads", heads},
                                                          {"attention_head_dim", head_dim},
                                                          {"num_layers", layers},
                                                          {"patch_size", patch},
                                                          {"in_channels", in_ch},
                                                          {"out_channels", out_ch},
                                                          {"sample_size", sample},
                                                          {"num_embeds_ada_norm", classes}})
    if (!whole(v)) return fail(errc::invalid_argument, k + " must be a positive integer");
  if (j.contains("num_embeds_ada_norm") && j["num_embeds_ada_norm"].is_null())
    return fail(errc::invalid_argument, "num_embeds_ada_norm must be set (the number of classes)");
  if (out_ch != in_ch && out_ch != 2 * in_ch)
    return fail(errc::invalid_argument, "out_channels " + std::to_string(static_cast<int>(out_ch)) +
                                            " is neither in_channels nor 2 * in_channels (learned sigma)");

  diffusers_shape s;
  s.out_channels = static_cast<int>(out_ch);
  model_config& c = s.cfg;
  c.heads = static_cast<int>(heads);
  c.hidden = c.heads * static_cast<int>(head_dim);
  c.depth = static_cast<int>(layers);
  c.mlp_ratio = 4;  // FeedForward's default mult; DiT's config has no field for it
  c.latent_channels = static_cast<int>(in_ch);
  c.patch_t = 1;
  c.patch_h = c.patch_w = static_cast<int>(patch);
  c.cond = conditioning::class_label;
  c.num_classes = static_cast<int>(classes);
  c.pos = positional::sincos;
  c.freq_shift = 1;  // Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1)
  const int side = sample_size_override > 0 ? sample_size_override : static_cast<int>(sample);
  c.frames = 1;
  c.height = c.width = side;
  c.name = "diffusers-dit-" + size_name(c.hidden, c.depth, c.heads) + "-" + std::to_string(c.patch_h) + "-" +
           std::to_string(side * 8);  // the SD VAE's stride: sample_size 32 is a 256-pixel model
  if (side % c.patch_h != 0)
    return fail(errc::invalid_argument, (sample_size_override > 0 ? "sample_size_override " : "sample_size ") +
                                            std::to_string(side) + " is not a multiple of patch_size " +
                                            std::to_string(c.patch_h));
  if (auto v = validate(c); !v) return fail(v.err().code, v.err().what);
  return s;
}

struct src_spec {
  std::string name;
  std::vector<std::int64_t> shape;
};

// Every tensor of a diffusers DiT state_dict (the non-persistent pos_embed buffer is not one).
std::vector<src_spec> diffusers_specs(const model_config& c, int out_channels) {
  const std::int64_t h = c.hidden, m = static_cast<std::int64_t>(c.hidden) * c.mlp_ratio, p = c.patch_h;
  std::vector<src_spec> v;
  auto lin = [&](const std::string& n, std::int64_t out, std::int64_t in) {
    v.push_back({n + ".weight", {out, in}});
    v.push_back({n + ".bias", {out}});
  };
  v.push_back({"pos_embed.proj.weight", {h, c.latent_channels, p, p}});
  v.push_back({"pos_embed.proj.bias", {h}});
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i) + ".";
    lin(b + "norm1.emb.timestep_embedder.linear_1", h, 256);
    lin(b + "norm1.emb.timestep_embedder.linear_2", h, h);
    v.push_back({b + "norm1.emb.class_embedder.embedding_table.weight", {c.num_classes + 1, h}});
    lin(b + "norm1.linear", 6 * h, h);
    for (const char* q : {"to_q", "to_k", "to_v"}) lin(b + "attn1." + q, h, h);
    lin(b + "attn1.to_out.0", h, h);
    lin(b + "ff.net.0.proj", m, h);
    lin(b + "ff.net.2", h, m);
  }
  lin("proj_out_1", 2 * h, h);
  lin("proj_out_2", p * p * out_channels, h);
  return v;
}

const char* const embedder_parts[] = {
    "norm1.emb.timestep_embedder.linear_1.weight", "norm1.emb.timestep_embedder.linear_1.bias",
    "norm1.emb.timestep_embedder.linear_2.weight", "norm1.emb.timestep_embedder.linear_2.bias",
    "norm1.emb.class_embedder.embedding_table.weight"};

}  // namespace

result<model_config> config_from_diffusers(const std::filesystem::path& config_json, int sample_size_override) {
  auto s = parse_config(config_json, sample_size_override);
  if (!s) return s.err();
  return s->cfg;
}

result<model> load_diffusers_dit(const std::filesystem::path& transformer_dir, int sample_size_override) {
  auto shape = parse_config(transformer_dir / "config.json", sample_size_override);
  if (!shape) return shape.err();
  const model_config& c = shape->cfg;
  const int oc = shape->out_channels;
  const auto path = transformer_dir / "diffusion_pytorch_model.safetensors";
  const auto fail = [&](const std::string& what) {
    return make_error(errc::invalid_argument, "diffusers dit " + path.string() + ": " + what);
  };
  if (!std::filesystem::exists(path) &&
      std::filesystem::exists(transformer_dir / "diffusion_pytorch_model.safetensors.index.json"))
    return fail("sharded checkpoints are not supported (one diffusion_pytorch_model.safetensors expected)");
  auto file = read_safetensors(path);
  if (!file) return file.err();

  // Every tensor present, in a float dtype, of its shape, finite; nothing else in the file.
  auto& src = file->tensors;
  const auto specs = diffusers_specs(c, oc);
  for (const auto& s : specs) {
    auto it = src.find(s.name);
    if (it == src.end()) return fail("missing tensor " + s.name);
    const st_tensor& x = it->second;
    if (x.dtype != "F32" && x.dtype != "F16" && x.dtype != "BF16")
      return fail(s.name + ": dtype " + x.dtype + " (weights are F32, F16 or BF16)");
    if (x.shape != s.shape)
      return fail(s.name + ": wrong shape " + shape_text(x.shape) + " (expected " + shape_text(s.shape) + ")");
    for (std::size_t i = 0; i < x.values.size(); ++i)
      if (!std::isfinite(x.values[i])) return fail(s.name + ": element " + std::to_string(i) + " is not finite");
  }
  if (src.size() != specs.size()) {
    std::map<std::string, int> known;
    for (const auto& s : specs) known[s.name] = 1;
    for (const auto& kv : src)
      if (!known.count(kv.first)) return fail("unexpected tensor " + kv.first + " (not part of a " + c.name + ")");
  }
  // gfdit has one conditioning embedder; diffusers gives every block its own (copies of one in
  // the checkpoints converted from DiT). Exact equality, so nothing is silently averaged away.
  for (int i = 1; i < c.depth; ++i)
    for (const char* part : embedder_parts) {
      const std::string name = "transformer_blocks." + std::to_string(i) + "." + part;
      const auto& a = src.at("transformer_blocks.0." + std::string(part)).values;
      const auto& b = src.at(name).values;
      for (std::size_t k = 0; k < a.size(); ++k)
        if (a[k] != b[k])
          return fail(name + " differs from block 0's at element " + std::to_string(k) +
                      " (gfdit shares one timestep/class embedder across blocks)");
    }

  std::map<std::string, std::vector<float>> t;
  const auto take = [&](const std::string& from) { return std::move(src.at(from).values); };
  const auto linear = [&](const std::string& to, const std::string& from) {
    t[to + ".weight"] = take(from + ".weight");
    t[to + ".bias"] = take(from + ".bias");
  };
  // The conv [hidden, C, p, p] is a linear over the patch vector in (channel, dy, dx) order:
  // gfdit's patchify order, so the weight is the same memory reshaped to [hidden, C*p*p].
  linear("x_embed", "pos_embed.proj");
  linear("t_embed.fc1", "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1");
  linear("t_embed.fc2", "transformer_blocks.0.norm1.emb.timestep_embedder.linear_2");
  t["y_embed.table"] =
      take("transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight");  // row num_classes: null
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "transformer_blocks." + std::to_string(i) + ".", g = "blocks." + std::to_string(i) + ".";
    linear(g + "ada", b + "norm1.linear");  // same chunk order: shift, scale, gate (msa), then mlp
    std::vector<float> w, bias;             // q rows, then k, then v; heads contiguous within each
    for (const char* q : {"to_q", "to_k", "to_v"}) {
      const auto& qw = src.at(b + "attn1." + q + ".weight").values;
      const auto& qb = src.at(b + "attn1." + q + ".bias").values;
      w.insert(w.end(), qw.begin(), qw.end());
      bias.insert(bias.end(), qb.begin(), qb.end());
    }
    t[g + "qkv.weight"] = std::move(w);
    t[g + "qkv.bias"] = std::move(bias);
    linear(g + "proj", b + "attn1.to_out.0");
    linear(g + "fc1", b + "ff.net.0.proj");
    linear(g + "fc2", b + "ff.net.2");
  }
  linear("final.ada", "proj_out_1");  // chunk(2): shift, then scale, as gfdit's final.ada
  // proj_out_2's outputs per token are (dy, dx, channel) ("nhwpqc->nchpwq"); gfdit's patch
  // vector is (channel, dy, dx). With learned sigma the first in_channels channels are epsilon
  // (DiTPipeline splits them off), which is what gfdit's DDIM sampler expects.
  {
    const int p = c.patch_h, C = c.latent_channels, H = c.hidden;
    const auto& w = src.at("proj_out_2.weight").values;
    const auto& bias = src.at("proj_out_2.bias").values;
    std::vector<float> fw(static_cast<std::size_t>(c.patch_dim()) * H), fb(static_cast<std::size_t>(c.patch_dim()));
    for (int ch = 0; ch < C; ++ch)
      for (int dy = 0; dy < p; ++dy)
        for (int dx = 0; dx < p; ++dx) {
          const std::size_t to = (static_cast<std::size_t>(ch) * p + dy) * p + dx;
          const std::size_t from = (static_cast<std::size_t>(dy) * p + dx) * oc + ch;
          std::copy_n(w.begin() + static_cast<std::ptrdiff_t>(from * H), H,
                      fw.begin() + static_cast<std::ptrdiff_t>(to * H));
          fb[to] = bias[from];
        }
    t["final.linear.weight"] = std::move(fw);
    t["final.linear.bias"] = std::move(fb);
  }
  return model::from_named(c, std::move(t), "diffusers dit " + path.string());
}

}  // namespace gfdit::dit
