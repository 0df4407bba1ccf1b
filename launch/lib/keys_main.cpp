// `gfdit keys make|list`: the CurveZMQ key pairs a keyed graph's nodes and tools hold.
#include <cstdio>
#include <filesystem>

#include "actors/runtime/curve_keys.hpp"
#include "launch/lib/commands.hpp"
#include "launch/lib/graph_keys.hpp"
#include "launch/lib/launch_file.hpp"

namespace gfdit::launch {
namespace fs = std::filesystem;

int keys_make(const std::string& dir, const std::vector<std::string>& names, const std::string& graph_file,
              const std::vector<std::string>& args) {
  std::vector<std::string> wanted = names;
  const bool for_graph = !graph_file.empty();
  if (for_graph) {
    auto g = load(graph_file, args);
    if (!g) return std::fprintf(stderr, "%s\n", g.err().what.c_str()), 2;
    for (const auto& i : g->instances) wanted.push_back(i.node);
    wanted.push_back(operator_key_name);
  }
  int made = 0;
  for (const auto& name : wanted) {
    std::error_code ec;
    // For a graph, pairs that exist are kept (a graph that grew gets only its new nodes' pairs).
    if (for_graph && fs::exists(fs::path(dir) / (name + ".key"), ec)) continue;
    auto pair = make_curve_key_pair();
    if (!pair) return std::fprintf(stderr, "gfdit keys: %s\n", pair.err().what.c_str()), 1;
    if (auto r = write_key_pair(dir, name, *pair); !r)
      return std::fprintf(stderr, "gfdit keys: %s\n", r.err().what.c_str()), 1;
    std::printf("%s %s\n", name.c_str(), pair->public_key.c_str());
    ++made;
  }
  std::fprintf(stderr, "gfdit keys: %d pair(s) made in %s\n", made, dir.c_str());
  return 0;
}

int keys_list(const std::string& dir) {
  auto ring = read_key_ring(dir);
  if (!ring) return std::fprintf(stderr, "gfdit keys: %s\n", ring.err().what.c_str()), 1;
  for (const auto& [name, key] : ring->by_name) {
    std::error_code ec;
    const bool secret = fs::exists(fs::path(dir) / (name + ".key"), ec);
    std::printf("%-24s %s%s\n", name.c_str(), key.c_str(), secret ? "  (secret here)" : "");
  }
  return 0;
}

}  // namespace gfdit::launch
