#pragma once
// What a launch file's `security:` means for one process: the CurveZMQ keys its bus uses, the
// wiring the bus checks senders against, and the rule that tcp beyond loopback needs keys.
#include <map>
#include <optional>
#include <string>

#include "actors/runtime/bus.hpp"
#include "actors/runtime/tool_key.hpp"
#include "common/result.hpp"
#include "launch/lib/launch_file.hpp"

namespace gfdit::launch {

// Node `node`'s keys: its pair DIR/<node>.key and every DIR/*.pub as the accepted keys. None
// when the graph is not keyed. Errors name the launch file's `keys:` line and the file.
result<std::optional<bus_curve>> node_curve(const graph_spec& g, const std::string& node);

// Every actor of the graph -> the node that hosts it (node_options::wiring).
std::map<std::string, std::string> actor_wiring(const graph_spec& g);

// Refuses a tcp bind beyond loopback (`bind` resolved, e.g. tcp://10.0.0.1:7600 or
// tcp://0.0.0.0:7600) in a graph without keys, unless it says `security: {insecure: true}`.
result<void> check_exposure(const graph_spec& g, const instance_spec& inst, const std::string& bind);

// ipc://..., tcp://127.x.y.z:..., tcp://[::1]:...
bool loopback_endpoint(const std::string& endpoint);

}  // namespace gfdit::launch
