#include "kernels/dit/model.hpp"

#include <cmath>
#include <cstring>

#include "common/hash.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/safetensors.hpp"

namespace gfdit::dit {

namespace {

void add_linear(std::vector<tensor_spec>& v, const std::string& name, std::int64_t out, std::int64_t in) {
  v.push_back({name + ".weight", {out, in}});
  v.push_back({name + ".bias", {out}});
}

}  // namespace

std::vector<tensor_spec> weight_specs(const model_config& c) {
  std::vector<tensor_spec> v;
  const std::int64_t h = c.hidden, m = static_cast<std::int64_t>(c.hidden) * c.mlp_ratio;
  add_linear(v, "x_embed", h, c.patch_dim());
  add_linear(v, "t_embed.fc1", h, 256);
  add_linear(v, "t_embed.fc2", h, h);
  if (c.cond == conditioning::class_label)
    v.push_back({"y_embed.table", {c.num_classes + 1, h}});
  else
    add_linear(v, "txt_embed", h, c.text_dim);
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    add_linear(v, b + ".ada", 6 * h, h);
    add_linear(v, b + ".qkv", 3 * h, h);
    add_linear(v, b + ".proj", h, h);
    add_linear(v, b + ".fc1", m, h);
    add_linear(v, b + ".fc2", h, m);
  }
  add_linear(v, "final.ada", 2 * h, h);
  add_linear(v, "final.linear", c.patch_dim(), h);
  return v;
}

std::int64_t parameter_count(const model_config& c) {
  std::int64_t n = 0;
  for (const auto& s : weight_specs(c)) n += s.numel();
  return n;
}

result<model> model::generate(const model_config& c, std::uint64_t seed) {
  if (auto v = validate(c); !v) return v.err();
  std::map<std::string, std::vector<std::uint16_t>> t;
  for (const auto& s : weight_specs(c)) {
    const std::uint64_t stream = seed ^ fnv1a64(s.name);
    const bool bias = s.shape.size() == 1;
    const bool table = s.name == "y_embed.table";
    // Uniform with variance 1/fan_in keeps activations of order one through the depth; the
    // adaLN projections are small but not zero, so every block does visible work.
    float scale = table ? 1.0f : std::sqrt(3.0f / static_cast<float>(bias ? 64 : s.shape[1]));
    if (s.name.find(".ada.") != std::string::npos) scale *= 0.25f;
    if (bias) scale = 0.02f;
    std::vector<std::uint16_t> d(static_cast<std::size_t>(s.numel()));
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = to_bf16((2.0f * counter_uniform(stream, i) - 1.0f) * scale);
    t.emplace(s.name, std::move(d));
  }
  return from_tensors(c, std::move(t));
}

result<model> model::from_named(const model_config& c, std::map<std::string, std::vector<float>> t,
                                const std::string& where) {
  const auto fail = [&](const std::string& what) { return make_error(errc::invalid_argument, where + ": " + what); };
  if (auto v = validate(c); !v) return v.err();
  std::map<std::string, std::vector<std::uint16_t>> b;
  for (const auto& s : weight_specs(c)) {
    auto it = t.find(s.name);
    if (it == t.end()) return fail("missing tensor " + s.name);
    if (static_cast<std::int64_t>(it->second.size()) != s.numel()) return fail("wrong size for " + s.name);
    std::vector<std::uint16_t> d(it->second.size());
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (!std::isfinite(it->second[i])) return fail(s.name + ": element " + std::to_string(i) + " is not finite");
      d[i] = to_bf16(it->second[i]);
    }
    b.emplace(s.name, std::move(d));
    t.erase(it);  // the fp32 copy goes as its bf16 one arrives (DiT-XL: 2.7 GB of them)
  }
  if (!t.empty()) return fail("unexpected tensor " + t.begin()->first + " (not part of " + c.name + ")");
  return from_tensors(c, std::move(b));
}

result<model> model::from_tensors(const model_config& c, std::map<std::string, std::vector<std::uint16_t>> t) {
  model m;
  m.config_ = c;
  for (const auto& s : weight_specs(c)) {
    auto it = t.find(s.name);
    if (it == t.end()) return make_error(errc::invalid_argument, "dit weights: missing tensor " + s.name);
    if (static_cast<std::int64_t>(it->second.size()) != s.numel())
      return make_error(errc::invalid_argument, "dit weights: wrong size for " + s.name);
    std::vector<float> f(it->second.size());
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = from_bf16(it->second[i]);
    m.f32_.emplace(s.name, std::move(f));
  }
  m.bf16_ = std::move(t);
  m.bind();
  return m;
}

void model::bind() {
  auto lin = [&](const std::string& n) {
    linear_ref r;
    const auto& w = f32_.at(n + ".weight");
    r.w = w.data();
    r.b = f32_.at(n + ".bias").data();
    r.out = static_cast<int>(f32_.at(n + ".bias").size());
    r.in = static_cast<int>(w.size() / static_cast<std::size_t>(r.out));
    return r;
  };
  x_embed_ = lin("x_embed");
  t_fc1_ = lin("t_embed.fc1");
  t_fc2_ = lin("t_embed.fc2");
  if (config_.cond == conditioning::class_label)
    y_table_ = f32_.at("y_embed.table").data();
  else
    txt_embed_ = lin("txt_embed");
  blocks_.clear();
  for (int i = 0; i < config_.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    blocks_.push_back({lin(b + ".ada"), lin(b + ".qkv"), lin(b + ".proj"), lin(b + ".fc1"), lin(b + ".fc2")});
  }
  final_ada_ = lin("final.ada");
  final_linear_ = lin("final.linear");
}

// --- safetensors (safetensors.hpp): gfdit's names, the config in the metadata ----------

result<void> model::save(const std::filesystem::path& path) const {
  st_file file;
  file.metadata = {{"format", "pt"}, {"gfdit.config", to_json(config_)}};
  for (const auto& s : weight_specs(config_)) {
    const auto& d = bf16_.at(s.name);
    st_tensor t{"BF16", s.shape, std::vector<float>(d.size())};
    for (std::size_t i = 0; i < d.size(); ++i) t.values[i] = from_bf16(d[i]);
    file.tensors.emplace(s.name, std::move(t));
  }
  if (auto r = write_safetensors(path, file, "BF16"); !r)
    return make_error(r.err().code, "dit weights: " + r.err().what);
  return {};
}

result<model> model::load(const std::filesystem::path& path, const model_config* expect) {
  const auto fail = [&](errc e, const std::string& what) {
    return make_error(e, "dit weights " + path.string() + ": " + what);
  };
  auto file = read_safetensors(path);
  if (!file) return file.err();
  model_config cfg;
  if (auto it = file->metadata.find("gfdit.config"); it != file->metadata.end()) {
    auto c = config_from_json(it->second);
    if (!c) return fail(c.err().code, c.err().what);
    cfg = *c;
  } else if (expect) {
    cfg = *expect;
  } else {
    return fail(errc::decode_failed, "no gfdit.config in __metadata__ and no config given");
  }
  if (expect && to_json(*expect) != to_json(cfg))
    return fail(errc::invalid_argument, "config in the file (" + to_json(cfg) + ") differs from the expected one");

  // The dtype and the exact shape here; presence, extras and finiteness in from_named.
  for (const auto& s : weight_specs(cfg)) {
    auto it = file->tensors.find(s.name);
    if (it == file->tensors.end()) continue;
    const st_tensor& x = it->second;
    if (x.dtype != "BF16" && x.dtype != "F16" && x.dtype != "F32")
      return fail(errc::invalid_argument, s.name + ": dtype " + x.dtype + " (weights are BF16, F16 or F32)");
    if (x.shape != s.shape)
      return fail(errc::invalid_argument,
                  s.name + ": wrong shape " + shape_text(x.shape) + " (expected " + shape_text(s.shape) + ")");
  }
  std::map<std::string, std::vector<float>> named;
  for (auto& [name, x] : file->tensors) named.emplace(name, std::move(x.values));
  return from_named(cfg, std::move(named), "dit weights " + path.string());
}

}  // namespace gfdit::dit
