#include "kernels/dit/model_card.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/text.hpp"
#include "kernels/dit/diffusers_dit.hpp"

namespace gfdit::dit {

namespace fs = std::filesystem;

namespace {

// A diffusers DiTPipeline folder: the transformer's config, ImageNet-style id2label names, DiT's
// DDIM schedule (checked, not assumed), the VAE beside it.
result<model_card> read_diffusers_pipeline(const fs::path& dir) {
  const fs::path index = dir / "model_index.json";
  auto text = read_text(index, 4u << 20);
  if (!text) return text.err();
  model_card card;
  card.dir = dir;
  card.layout = weights_layout::diffusers;
  card.sampler = sampler_kind::ddim;
  card.default_steps = 50;
  card.default_guidance = 4.0f;
  try {
    const auto j = nlohmann::json::parse(*text);
    const std::string cls = j.value("_class_name", std::string());
    if (cls != "DiTPipeline")
      return make_error(errc::invalid_argument,
                        index.string() + ": _class_name '" + cls + "' (gfdit reads DiTPipeline folders)");
    auto cfg = config_from_diffusers(dir / "transformer" / "config.json");
    if (!cfg) return cfg.err();
    card.config = *cfg;
    if (j.contains("id2label")) {
      card.class_names.assign(static_cast<std::size_t>(card.config.num_classes), std::string());
      for (const auto& [k, v] : j.at("id2label").items()) {
        const int id = std::stoi(k);
        if (id < 0 || id >= card.config.num_classes)
          return make_error(errc::invalid_argument,
                            index.string() + ": id2label key " + k + " is not a class of the transformer");
        card.class_names[static_cast<std::size_t>(id)] = v.get<std::string>();
      }
    }
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, index.string() + ": " + e.what());
  }
  const fs::path sched = dir / "scheduler" / "scheduler_config.json";
  if (fs::exists(sched)) {
    auto st = read_text(sched, 1u << 20);
    if (!st) return st.err();
    try {
      const auto j = nlohmann::json::parse(*st);
      const auto bad = [&](const std::string& field, const std::string& want) {
        return make_error(errc::invalid_argument, sched.string() + ": " + field + " is not " + want +
                                                      " (gfdit samples DiT with DDIM over its linear betas)");
      };
      if (j.value("beta_schedule", std::string("linear")) != "linear") return bad("beta_schedule", "linear");
      if (std::abs(j.value("beta_start", 0.0001) - 0.0001) > 1e-12) return bad("beta_start", "0.0001");
      if (std::abs(j.value("beta_end", 0.02) - 0.02) > 1e-12) return bad("beta_end", "0.02");
      if (j.value("num_train_timesteps", 1000) != 1000) return bad("num_train_timesteps", "1000");
      if (j.value("prediction_type", std::string("epsilon")) != "epsilon") return bad("prediction_type", "epsilon");
      // DDIMScheduler's defaults where the file is silent: clip_sample true (DiT's files say false).
      if (j.value("clip_sample", true)) return bad("clip_sample", "false");
      if (!j.value("set_alpha_to_one", true)) return bad("set_alpha_to_one", "true");
      if (j.value("steps_offset", 0) != 0) return bad("steps_offset", "0");
      if (j.value("timestep_spacing", std::string("leading")) != "leading") return bad("timestep_spacing", "leading");
    } catch (const std::exception& e) {
      return make_error(errc::decode_failed, sched.string() + ": " + e.what());
    }
  }
  if (fs::exists(dir / "vae" / "config.json")) card.vae_dir = dir / "vae";
  return card;
}

}  // namespace

result<model_card> read_model_card(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  if (!fs::exists(file) && fs::exists(dir / "model_index.json")) return read_diffusers_pipeline(dir);
  if (!fs::exists(file))
    return make_error(errc::not_found, "model " + dir.string() + ": no config.json (nor a diffusers model_index.json)");
  auto read = read_text(file, 1u << 20);
  if (!read) return read.err();
  const std::string& text = *read;
  auto cfg = config_from_json(text);
  if (!cfg) return make_error(cfg.err().code, file.string() + ": " + cfg.err().what);
  model_card card;
  card.dir = dir;
  card.config = *cfg;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.contains("class_names")) card.class_names = j.at("class_names").get<std::vector<std::string>>();
    const std::string sampler = j.value("sampler", std::string("flow_euler"));
    if (sampler != "flow_euler" && sampler != "ddim")
      return make_error(errc::invalid_argument, file.string() + ": sampler '" + sampler + "' (flow_euler or ddim)");
    card.sampler = sampler == "ddim" ? sampler_kind::ddim : sampler_kind::flow_euler;
    card.default_steps = j.value("default_steps", card.default_steps);
    card.default_guidance = j.value("default_guidance", card.default_guidance);
    card.shift = j.value("shift", card.shift);
    if (j.contains("vae")) card.vae_dir = dir / j.at("vae").get<std::string>();
    if (j.contains("pixel_range")) {
      const auto r = j.at("pixel_range").get<std::vector<float>>();
      if (r.size() != 2 || !(r[0] < r[1]))
        return make_error(errc::invalid_argument, file.string() + ": pixel_range must be [lo, hi], lo < hi");
      card.pixel_lo = r[0];
      card.pixel_hi = r[1];
    }
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, file.string() + ": " + e.what());
  }
  if (card.config.cond == conditioning::class_label && !card.class_names.empty() &&
      static_cast<int>(card.class_names.size()) != card.config.num_classes)
    return make_error(errc::invalid_argument, file.string() + ": " + std::to_string(card.class_names.size()) +
                                                  " class_names for num_classes " +
                                                  std::to_string(card.config.num_classes));
  if (card.default_steps < 1 || card.default_steps > 1000)
    return make_error(errc::invalid_argument, file.string() + ": default_steps must be 1..1000");
  return card;
}

result<model> load_model(const model_card& card) {
  if (card.layout == weights_layout::diffusers) {
    auto m = load_diffusers_dit(card.dir / "transformer");
    if (!m) return m.err();
    return m;
  }
  return model::load(card.weights(), &card.config);
}

std::vector<fs::path> model_search_path(const fs::path& exe) {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("GFDIT_MODELS")) {
    std::stringstream ss(env);
    for (std::string part; std::getline(ss, part, ':');)
      if (!part.empty()) out.emplace_back(part);
  }
  out.emplace_back("models");
  std::error_code ec;
  fs::path d = fs::weakly_canonical(exe, ec).parent_path();
  for (int up = 0; up < 4 && !d.empty(); ++up, d = d.parent_path()) {
    out.push_back(d / "models");
    out.push_back(d / "share" / "gfdit" / "models");
    if (d == d.parent_path()) break;
  }
  return out;
}

result<fs::path> find_model(std::string_view name, const std::vector<fs::path>& search) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..")
    return make_error(errc::invalid_argument,
                      "model name '" + std::string(name) + "' (a plain name, or --weights DIR)");
  std::string searched, seen;
  std::error_code ec;
  for (const auto& dir : search) {
    if (fs::exists(dir / name / "config.json", ec)) return dir / name;
    searched += (searched.empty() ? "" : ", ") + dir.string();
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (fs::exists(e.path() / "config.json", ec) && seen.find(e.path().filename().string()) == std::string::npos)
        seen += (seen.empty() ? "" : ", ") + e.path().filename().string();
  }
  return make_error(errc::not_found, "no model '" + std::string(name) + "' in " + searched +
                                         (seen.empty() ? "" : " (models found: " + seen + ")"));
}

namespace {

// Lower case, every run of other characters one space: "T-Shirt/Top" -> "t shirt top".
std::string normalise(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c)) {
      out += static_cast<char>(std::tolower(c));
    } else if (!out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The names a class answers to: its whole name and each '/'- or ','-separated part, normalised.
std::vector<std::string> aliases(const std::string& name) {
  std::vector<std::string> out{normalise(name)};
  std::string part;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/' || name[i] == ',') {
      if (auto n = normalise(part); !n.empty() && n != out.front()) out.push_back(n);
      part.clear();
    } else {
      part += name[i];
    }
  }
  return out;
}

}  // namespace

result<int> match_class(const model_card& card, std::string_view prompt) {
  if (card.class_names.empty())
    return make_error(errc::invalid_argument, "this model names no classes: give a class number");
  const std::string p = normalise(prompt);
  if (p.empty()) return make_error(errc::invalid_argument, "empty prompt");
  const std::string padded = " " + p + " ";
  std::vector<std::pair<int, std::string>> found;  // every class name the prompt holds as words
  for (int c = 0; c < static_cast<int>(card.class_names.size()); ++c)
    for (const auto& a : aliases(card.class_names[static_cast<std::size_t>(c)])) {
      if (a == p) return c;
      if (padded.find(" " + a + " ") != std::string::npos) found.emplace_back(c, a);
    }
  int best = -1;
  std::string best_alias;
  for (const auto& [c, a] : found)
    if (a.size() > best_alias.size()) best = c, best_alias = a;
  // "a t-shirt" holds "shirt" inside "t shirt": only a name outside the longest one is a second class.
  bool tie = false;
  for (const auto& [c, a] : found)
    if (c != best && (" " + best_alias + " ").find(" " + a + " ") == std::string::npos) tie = true;
  if (best >= 0 && !tie) return best;
  std::vector<std::pair<std::size_t, int>> d;
  for (int c = 0; c < static_cast<int>(card.class_names.size()); ++c) {
    std::size_t m = SIZE_MAX;
    for (const auto& a : aliases(card.class_names[static_cast<std::size_t>(c)])) m = std::min(m, edit_distance(p, a));
    d.emplace_back(m, c);
  }
  std::stable_sort(d.begin(), d.end());
  std::string nearest;
  for (std::size_t i = 0; i < std::min<std::size_t>(3, d.size()); ++i)
    nearest += (i ? ", '" : "'") + card.class_names[static_cast<std::size_t>(d[i].second)] + "'";
  return make_error(errc::not_found, std::string(tie ? "prompt '" : "no class matches '") + std::string(prompt) +
                                         (tie ? "' names more than one class" : "'") + "; nearest: " + nearest);
}

}  // namespace gfdit::dit
