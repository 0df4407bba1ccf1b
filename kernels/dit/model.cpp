#include "kernels/dit/model.hpp"

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/hash.hpp"
#include "kernels/dit/numerics.hpp"

namespace gfdit::dit {

namespace {

constexpr std::uint64_t max_header_bytes = 16u << 20;  // safetensors' own limit is 100 MB

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
    for (std::size_t i = 0; i < d.size(); ++i)
      d[i] = to_bf16((2.0f * counter_uniform(stream, i) - 1.0f) * scale);
    t.emplace(s.name, std::move(d));
  }
  return from_tensors(c, std::move(t));
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

// --- safetensors: u64 little-endian header length, JSON header, then the raw data ----------

result<void> model::save(const std::filesystem::path& path) const {
  nlohmann::json h = nlohmann::json::object();
  h["__metadata__"] = {{"format", "pt"}, {"gfdit.config", to_json(config_)}};
  std::uint64_t off = 0;
  const auto specs = weight_specs(config_);
  for (const auto& s : specs) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(s.numel()) * 2;
    h[s.name] = {{"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string head = h.dump();
  head.append((8 - head.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as the spec advises
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return make_error(errc::io, "dit weights: cannot write " + path.string());
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(head.size()) >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(head.data(), static_cast<std::streamsize>(head.size()));
  for (const auto& s : specs) {
    const auto& d = bf16_.at(s.name);
    for (auto x : d) {  // little-endian regardless of the host
      const char b[2] = {static_cast<char>(x & 0xff), static_cast<char>(x >> 8)};
      f.write(b, 2);
    }
  }
  f.close();
  if (!f) return make_error(errc::io, "dit weights: write failed for " + path.string());
  return {};
}

result<model> model::load(const std::filesystem::path& path, const model_config* expect) {
  const auto fail = [&](errc e, const std::string& what) {
    return make_error(e, "dit weights " + path.string() + ": " + what);
  };
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  if (ec) return fail(errc::not_found, "cannot stat (" + ec.message() + ")");
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail(errc::io, "cannot open");
  if (file_size < 8) return fail(errc::decode_failed, "truncated: shorter than the 8-byte header length");
  std::uint8_t len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  std::uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<std::uint64_t>(len[i]) << (8 * i);
  if (hlen > max_header_bytes) return fail(errc::too_large, "header of " + std::to_string(hlen) + " bytes exceeds the limit");
  if (hlen > file_size - 8) return fail(errc::decode_failed, "truncated: header runs past the end of the file");
  std::string head(hlen, '\0');
  f.read(head.data(), static_cast<std::streamsize>(hlen));
  if (!f) return fail(errc::io, "read failed");
  const std::uint64_t data_size = file_size - 8 - hlen;

  nlohmann::json h;
  try {
    h = nlohmann::json::parse(head);
  } catch (const std::exception& e) {
    return fail(errc::decode_failed, std::string("header is not JSON: ") + e.what());
  }
  if (!h.is_object()) return fail(errc::decode_failed, "header is not a JSON object");

  model_config cfg;
  try {
    const auto& meta = h.at("__metadata__");
    auto c = config_from_json(meta.at("gfdit.config").get<std::string>());
    if (!c) return fail(c.err().code, c.err().what);
    cfg = *c;
  } catch (const std::exception&) {
    if (!expect) return fail(errc::decode_failed, "no gfdit.config in __metadata__ and no config given");
    cfg = *expect;
  }
  if (expect && to_json(*expect) != to_json(cfg))
    return fail(errc::invalid_argument, "config in the file (" + to_json(cfg) + ") differs from the expected one");

  std::map<std::string, std::vector<std::uint16_t>> t;
  for (const auto& s : weight_specs(cfg)) {
    if (!h.contains(s.name)) return fail(errc::invalid_argument, "missing tensor " + s.name);
    const auto& e = h[s.name];
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t b = 0, en = 0;
    try {
      dtype = e.at("dtype").get<std::string>();
      shape = e.at("shape").get<std::vector<std::int64_t>>();
      const auto& o = e.at("data_offsets");
      if (!o.is_array() || o.size() != 2) return fail(errc::decode_failed, s.name + ": data_offsets must be [begin, end]");
      b = o[0].get<std::uint64_t>();
      en = o[1].get<std::uint64_t>();
    } catch (const std::exception& ex) {
      return fail(errc::decode_failed, s.name + ": malformed entry (" + ex.what() + ")");
    }
    if (dtype != "BF16") return fail(errc::invalid_argument, s.name + ": wrong dtype " + dtype + " (expected BF16)");
    if (shape != s.shape) {
      std::string got, want;
      for (auto d : shape) got += std::to_string(d) + ",";
      for (auto d : s.shape) want += std::to_string(d) + ",";
      return fail(errc::invalid_argument, s.name + ": wrong shape [" + got + "] (expected [" + want + "])");
    }
    if (en < b || en - b != static_cast<std::uint64_t>(s.numel()) * 2)
      return fail(errc::decode_failed, s.name + ": data_offsets do not match the shape");
    if (en > data_size) return fail(errc::decode_failed, "truncated: " + s.name + " ends past the end of the file");
    std::vector<std::uint8_t> raw(en - b);
    f.seekg(static_cast<std::streamoff>(8 + hlen + b));
    f.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    if (!f) return fail(errc::io, s.name + ": read failed");
    std::vector<std::uint16_t> d(static_cast<std::size_t>(s.numel()));
    for (std::size_t i = 0; i < d.size(); ++i)
      d[i] = static_cast<std::uint16_t>(raw[2 * i] | (raw[2 * i + 1] << 8));
    t.emplace(s.name, std::move(d));
  }
  return from_tensors(cfg, std::move(t));
}

}  // namespace gfdit::dit
