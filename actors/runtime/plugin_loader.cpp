#include "actors/runtime/plugin_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "actors/runtime/registry.hpp"

namespace gfdit {
namespace {

std::mutex loader_mu;
std::map<std::string, loaded_plugin>& loaded() {
  static std::map<std::string, loaded_plugin> m;
  return m;
}

std::set<std::string> type_names() {
  std::set<std::string> out;
  for (const auto& t : actor_registry::global().list()) out.insert(t.name);
  return out;
}

}  // namespace

result<loaded_plugin> load_plugin(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec || !fs::is_regular_file(abs)) return make_error(errc::not_found, "plugin '" + path + "' is not a file");
  const std::string key = abs.string();
  std::lock_guard lock(loader_mu);
  if (auto it = loaded().find(key); it != loaded().end()) return it->second;

  auto& reg = actor_registry::global();
  const auto before = type_names();
  const std::string previous_origin = reg.origin();
  reg.set_origin(key);  // the library's static registrars read it while dlopen runs them
  void* handle = ::dlopen(key.c_str(), RTLD_NOW | RTLD_GLOBAL);
  reg.set_origin(previous_origin);
  if (!handle) {
    const char* why = ::dlerror();
    return make_error(errc::io, "plugin '" + path + "' did not load: " + (why ? why : "unknown"));
  }
  // Deliberately never dlclose()d: actors of its types may outlive any scope here.
  loaded_plugin p{key, {}};
  for (const auto& t : reg.list())
    if (!before.count(t.name) && t.origin == key) p.types.push_back(t.name);
  loaded().emplace(key, p);
  return p;
}

result<std::vector<loaded_plugin>> load_plugin_path(const std::string& list) {
  namespace fs = std::filesystem;
  std::vector<loaded_plugin> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t end = std::min(list.find(':', start), list.size());
    const std::string entry = list.substr(start, end - start);
    start = end + 1;
    if (entry.empty()) continue;
    std::error_code ec;
    if (fs::is_directory(entry, ec)) {
      std::vector<std::string> libs;
      for (const auto& f : fs::directory_iterator(entry, ec))
        if (f.is_regular_file() && f.path().extension() == ".so") libs.push_back(f.path().string());
      std::sort(libs.begin(), libs.end());
      for (const auto& l : libs) {
        auto p = load_plugin(l);
        if (!p) return p.err();
        out.push_back(std::move(*p));
      }
    } else {
      auto p = load_plugin(entry);
      if (!p) return p.err();
      out.push_back(std::move(*p));
    }
  }
  return out;
}

result<std::vector<loaded_plugin>> load_plugins_from_env() {
  const char* env = std::getenv("GFDIT_PLUGIN_PATH");
  if (!env || !*env) return std::vector<loaded_plugin>{};
  auto r = load_plugin_path(env);
  if (!r) return make_error(r.err().code, "GFDIT_PLUGIN_PATH: " + r.err().what);
  return r;
}

}  // namespace gfdit
