#include "actors/sim/faults.hpp"

#include <sstream>

#include <yaml-cpp/yaml.h>

#include "common/text.hpp"

namespace gfdit::sim {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

result<void> check(const faults& f) {
  if (f.random_deaths < 0 || f.delay_prob < 0 || f.delay_prob > 1 || f.delay_max_ms < 0 || f.random_recover_after_s < 0)
    return make_error(errc::invalid_argument, "faults: a value is out of range");
  for (const auto& d : f.deaths)
    if (d.worker < 0 || d.at_s < 0 || d.recover_after_s < 0)
      return make_error(errc::invalid_argument, "faults: a death has a negative field");
  return {};
}

}  // namespace

result<faults> parse_faults(const std::string& spec) {
  faults f;
  try {
    if (ends_with(spec, ".yaml") || ends_with(spec, ".yml") || ends_with(spec, ".json")) {
      const auto text = read_text(spec);
      if (!text) return make_error(errc::not_found, "cannot open faults file " + spec);
      YAML::Node n = YAML::Load(*text);
      for (const auto& d : n["deaths"]) {
        worker_death wd;
        wd.worker = d["worker"].as<std::int32_t>();
        wd.at_s = d["at_s"].as<double>();
        if (d["recover_after_s"]) wd.recover_after_s = d["recover_after_s"].as<double>();
        f.deaths.push_back(wd);
      }
      if (n["random_deaths"]) f.random_deaths = n["random_deaths"].as<std::int32_t>();
      if (n["recover_after_s"]) f.random_recover_after_s = n["recover_after_s"].as<double>();
      if (auto d = n["delay"]) {
        if (d["prob"]) f.delay_prob = d["prob"].as<double>();
        if (d["max_ms"]) f.delay_max_ms = d["max_ms"].as<double>();
      }
    } else {
      std::stringstream ss(spec);
      std::string item;
      while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        const auto eq = item.find('=');
        if (eq == std::string::npos)
          return make_error(errc::invalid_argument, "faults: '" + item + "' is not key=value");
        const std::string k = item.substr(0, eq);
        const double v = std::stod(item.substr(eq + 1));
        if (k == "deaths")
          f.random_deaths = static_cast<std::int32_t>(v);
        else if (k == "recover_s")
          f.random_recover_after_s = v;
        else if (k == "delay_prob")
          f.delay_prob = v;
        else if (k == "delay_ms")
          f.delay_max_ms = v;
        else
          return make_error(errc::invalid_argument,
                            "faults: unknown key '" + k + "' (deaths, recover_s, delay_prob, delay_ms)");
      }
    }
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, std::string("faults: ") + e.what());
  }
  if (auto r = check(f); !r) return r.err();
  return f;
}

}  // namespace gfdit::sim
