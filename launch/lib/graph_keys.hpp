#pragma once
// What a launch file's `security:` means for one process: the CurveZMQ keys its bus uses, the
// wiring the bus checks senders against, and the rule that tcp beyond loopback needs keys.
#include <map>
#include <optional>
#include <string>

#include "actors/runtime/bus.hpp"
#include "common/result.hpp"
#include "launch/lib/launch_file.hpp"

namespace gfdit::launch {

// The key a tool joins a keyed graph with when GFDIT_KEY names none: DIR/operator.key.
inline constexpr const char* operator_key_name = "operator";

// Node `node`'s keys: its pair DIR/<node>.key and every DIR/*.pub as the accepted keys. None
// when the graph is not keyed. Errors name the launch file's `keys:` line and the file.
result<std::optional<bus_curve>> node_curve(const graph_spec& g, const std::string& node);

// Every actor of the graph -> the node that hosts it (node_options::wiring).
std::map<std::string, std::string> actor_wiring(const graph_spec& g);

// A tool's keys for the graph keyed with `keys_dir`: the pair GFDIT_KEY names (a NAME.key
// file), else keys_dir/operator.key. `name` is the key's name (the file's stem).
struct tool_key {
  std::string name;
  bus_curve curve;
};
result<tool_key> read_tool_key(const std::string& keys_dir);

// Refuses a tcp bind beyond loopback (`bind` resolved, e.g. tcp://10.0.0.1:7600 or
// tcp://0.0.0.0:7600) in a graph without keys, unless it says `security: {insecure: true}`.
result<void> check_exposure(const graph_spec& g, const instance_spec& inst, const std::string& bind);

// ipc://..., tcp://127.x.y.z:..., tcp://[::1]:...
bool loopback_endpoint(const std::string& endpoint);

}  // namespace gfdit::launch
