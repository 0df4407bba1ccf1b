#include "actors/runtime/tool_key.hpp"

#include <cstdlib>
#include <filesystem>

namespace gfdit {
namespace fs = std::filesystem;

result<tool_key> read_tool_key(const std::string& keys_dir) {
  const char* given = std::getenv("GFDIT_KEY");
  const fs::path secret =
      given && *given ? fs::path(given) : fs::path(keys_dir) / (std::string(operator_key_name) + ".key");
  auto own = read_key_pair(secret);
  if (!own)
    return make_error(own.err().code, "the graph is keyed (" + keys_dir +
                                          "): set GFDIT_KEY to a key file of its folder (" + own.err().what + ")");
  auto ring = read_key_ring(keys_dir);
  if (!ring) return ring.err();
  const std::string name = secret.stem().string();
  if (ring->public_of(name) != own->public_key)
    return make_error(errc::invalid_argument,
                      secret.string() + ": the graph's key folder " + keys_dir + " lists no " + name + ".pub for it");
  return tool_key{name, bus_curve{std::move(*own), std::move(*ring)}};
}

}  // namespace gfdit
