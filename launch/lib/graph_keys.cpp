#include "launch/lib/graph_keys.hpp"

#include <filesystem>

namespace gfdit::launch {
namespace fs = std::filesystem;

result<std::optional<bus_curve>> node_curve(const graph_spec& g, const std::string& node) {
  if (g.security.keys.empty()) return std::optional<bus_curve>();
  const std::string where = g.security.keys_at.str() + ": ";
  if (!curve_available())
    return make_error(errc::state, where + "the graph is keyed, but this libzmq has no CURVE support");
  auto ring = read_key_ring(g.security.keys);
  if (!ring) return make_error(ring.err().code, where + ring.err().what);
  const fs::path secret = fs::path(g.security.keys) / (node + ".key");
  auto own = read_key_pair(secret);
  if (!own)
    return make_error(own.err().code, where + "node '" + node + "' needs its key pair (gfdit keys make " +
                                          g.security.keys + " " + node + "): " + own.err().what);
  if (ring->public_of(node) != own->public_key)
    return make_error(errc::invalid_argument, where + "node '" + node + "': " + secret.string() + " has no matching " +
                                                  node + ".pub in the folder");
  return std::optional<bus_curve>(bus_curve{std::move(*own), std::move(*ring)});
}

std::map<std::string, std::string> actor_wiring(const graph_spec& g) {
  std::map<std::string, std::string> out;
  for (const auto& i : g.instances)
    for (const auto& a : i.actors) out[a.name] = i.node;
  return out;
}

bool loopback_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  const std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1";
}

result<void> check_exposure(const graph_spec& g, const instance_spec& inst, const std::string& bind) {
  if (!g.security.keys.empty() || g.security.insecure || loopback_endpoint(bind)) return {};
  return make_error(errc::invalid_argument,
                    inst.at.str() + ": process '" + inst.node + "' would bind " + bind +
                        ", beyond loopback, without keys: anyone who reaches it could speak for any actor. "
                        "Key the graph (gfdit keys make DIR --graph " +
                        g.file + "; then `security: {keys: DIR}`) or say `security: {insecure: true}`");
}

}  // namespace gfdit::launch
