#pragma once
// Loads actor plugins: shared libraries whose GFDIT_REGISTER_ACTOR lines run when they are
// opened, tagging each type with the library's path as its origin (`gfdit actor types`).
//   GFDIT_PLUGIN_PATH=/opt/a/libfoo.so:/opt/plugins   (files, or folders of *.so)
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gfdit {

struct loaded_plugin {
  std::string path;                // as opened (absolute)
  std::vector<std::string> types;  // actor types it registered
};

// Opens one library (RTLD_NOW | RTLD_GLOBAL, so its message types and symbols are shared).
// Opening the same path twice is harmless and returns what the first load registered. A type
// name that is already registered keeps its first origin (the registry refuses duplicates).
result<loaded_plugin> load_plugin(const std::string& path);

// Every entry of a ':'-separated list: a library, or a folder whose *.so files load in name
// order. Missing entries are errors.
result<std::vector<loaded_plugin>> load_plugin_path(const std::string& list);

// load_plugin_path(getenv("GFDIT_PLUGIN_PATH")), or nothing when unset.
result<std::vector<loaded_plugin>> load_plugins_from_env();

}  // namespace gfdit
