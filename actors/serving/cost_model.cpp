#include "actors/serving/cost_model.hpp"

#include <algorithm>
#include <cmath>

#include <yaml-cpp/yaml.h>

#include "common/text.hpp"

namespace gfdit {

// Generated at configure time from actors/serving/profiles/*.yaml.
extern const std::vector<std::string_view>& stock_profile_texts();

namespace {

template <class T>
void get(const YAML::Node& n, const char* key, T& out) {
  if (n && n[key]) out = n[key].as<T>();
}

stage_coeffs parse_stage(const YAML::Node& n) {
  stage_coeffs c;
  get(n, "a_us", c.a_us);
  get(n, "b_us", c.b_us);
  get(n, "bp_us", c.bp_us);
  get(n, "c_us", c.c_us);
  return c;
}

result<model_profile> parse_profile(const YAML::Node& n) {
  model_profile p;
  get(n, "model", p.name);
  if (p.name.empty()) return make_error(errc::invalid_argument, "profile: missing 'model'");
  get(n, "description", p.description);
  if (auto s = n["shape"]) {
    get(s, "video", p.video);
    get(s, "spatial_stride", p.spatial_stride);
    get(s, "temporal_stride", p.temporal_stride);
    get(s, "min_side", p.min_side);
    get(s, "max_side", p.max_side);
    get(s, "max_frames", p.max_frames);
  }
  get(n, "max_steps", p.max_steps);
  get(n, "max_degree", p.max_degree);
  get(n, "min_tokens_per_rank", p.min_tokens_per_rank);
  if (auto s = n["stages"]) {
    p.prepare = parse_stage(s["prepare"]);
    p.step = parse_stage(s["step"]);
    p.decode = parse_stage(s["decode"]);
  }
  if (auto c = n["comm"]) {
    get(c, "alpha_us", p.comm_alpha_us);
    get(c, "gamma_us", p.comm_gamma_us);
  }
  if (auto r = n["reshard"]) {
    get(r, "fixed_us", p.reshard_fixed_us);
    get(r, "bytes_per_token", p.bytes_per_token);
    get(r, "gbps", p.link_gbps);
  }
  if (p.spatial_stride < 1 || p.temporal_stride < 1 || p.max_degree < 1 || p.max_steps < 1 || p.min_side < 1 ||
      p.max_side < p.min_side || p.max_frames < 1 || p.link_gbps <= 0 || p.min_tokens_per_rank <= 0)
    return make_error(errc::invalid_argument, "profile '" + p.name + "': a limit is out of range");
  return p;
}

}  // namespace

result<void> cost_model::merge_yaml(std::string_view text) {
  try {
    YAML::Node root = YAML::Load(std::string(text));
    std::vector<YAML::Node> nodes;
    if (root["models"]) {
      for (const auto& m : root["models"]) nodes.push_back(m);
    } else {
      nodes.push_back(root);
    }
    for (const auto& n : nodes) {
      auto p = parse_profile(n);
      if (!p) return p.err();
      profiles_[p->name] = std::move(*p);
    }
    return {};
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, std::string("profile: ") + e.what());
  }
}

result<cost_model> cost_model::from_yaml(std::string_view text) {
  cost_model m;
  if (auto r = m.merge_yaml(text); !r) return r.err();
  return m;
}

result<cost_model> cost_model::from_file(const std::string& path) {
  const auto text = read_text(path);
  if (!text) return make_error(errc::not_found, "cannot open profile " + path);
  return from_yaml(*text);
}

result<std::shared_ptr<const cost_model>> cost_model::load(const std::string& path) {
  if (path.empty()) return std::shared_ptr<const cost_model>(&stock(), [](const cost_model*) {});
  auto m = from_file(path);
  if (!m) return m.err();
  return std::shared_ptr<const cost_model>(std::make_shared<cost_model>(std::move(*m)));
}

const cost_model& cost_model::stock() {
  static const cost_model m = [] {
    cost_model c;
    for (auto text : stock_profile_texts()) {
      // The stock files are tested; a broken one is a build defect.
      if (auto r = c.merge_yaml(text); !r) throw std::logic_error(r.err().what);
    }
    return c;
  }();
  return m;
}

const model_profile* cost_model::find(std::string_view model) const {
  auto it = profiles_.find(model);
  return it == profiles_.end() ? nullptr : &it->second;
}

std::vector<std::string> cost_model::models() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : profiles_) out.push_back(k);
  return out;
}

std::int64_t cost_model::tokens(const model_profile& p, std::int32_t width, std::int32_t height,
                                std::int32_t frames) noexcept {
  const std::int64_t w = std::max<std::int64_t>(1, width / p.spatial_stride);
  const std::int64_t h = std::max<std::int64_t>(1, height / p.spatial_stride);
  const std::int64_t t = p.video ? (std::max(frames, 1) - 1) / p.temporal_stride + 1 : 1;
  return w * h * t;
}

double cost_model::stage_us(const model_profile& p, stage s, std::int64_t tokens, std::int32_t degree) noexcept {
  const stage_coeffs& k = s == stage::prepare ? p.prepare : s == stage::decode ? p.decode : p.step;
  const double T = static_cast<double>(tokens);
  const double d = std::max(1, degree);
  const double d_eff = std::min(d, std::max(1.0, T / p.min_tokens_per_rank));
  double t = k.a_us + k.b_us * T + (k.bp_us * T + k.c_us * T * T) / d_eff;
  if (s == stage::denoise && d > 1) t += p.comm_alpha_us * (d - 1) + p.comm_gamma_us * T * (d - 1) / d;
  return t;
}

double cost_model::task_us(const model_profile& p, stage s, std::int64_t tokens, std::int32_t steps,
                           std::int32_t degree) noexcept {
  const double one = stage_us(p, s, tokens, degree);
  return s == stage::denoise ? one * std::max(0, steps) : one;
}

double cost_model::request_us(const model_profile& p, std::int64_t tokens, std::int32_t steps,
                              std::int32_t degree) noexcept {
  return task_us(p, stage::prepare, tokens, 0, degree) + task_us(p, stage::denoise, tokens, steps, degree) +
         task_us(p, stage::decode, tokens, 0, degree);
}

std::int64_t cost_model::state_bytes(const model_profile& p, std::int64_t tokens) noexcept {
  return static_cast<std::int64_t>(p.bytes_per_token * static_cast<double>(tokens));
}

double cost_model::reshard_us(const model_profile& p, std::int64_t tokens) noexcept {
  // GB/s == bytes per ns; /1e3 gives bytes per us.
  return p.reshard_fixed_us + static_cast<double>(state_bytes(p, tokens)) / (p.link_gbps * 1e3);
}

std::vector<std::int32_t> cost_model::degrees(const model_profile& p) {
  std::vector<std::int32_t> out;
  for (std::int32_t d = 1; d <= p.max_degree; d *= 2) out.push_back(d);
  return out;
}

}  // namespace gfdit
