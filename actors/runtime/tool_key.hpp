#pragma once
// The key a tool (gfdit topic echo, param, top, bag record/play, bench serve) joins a keyed
// graph with. Its node is named "KEY~...", which the graph's speaker check lets that key speak
// for (speaker_check.hpp).
#include <string>

#include "actors/runtime/bus.hpp"
#include "common/result.hpp"

namespace gfdit {

// The key a tool joins a keyed graph with when GFDIT_KEY names none: DIR/operator.key.
inline constexpr const char* operator_key_name = "operator";

// A tool's keys for the graph keyed with `keys_dir`: the pair GFDIT_KEY names (a NAME.key
// file), else keys_dir/operator.key. `name` is the key's name (the file's stem).
struct tool_key {
  std::string name;
  bus_curve curve;
  // The node a tool joins as: "NAME~TOOL", which this key may speak for (speaker_check.hpp).
  std::string node_for(const std::string& tool) const { return name + "~" + tool; }
};
result<tool_key> read_tool_key(const std::string& keys_dir);

}  // namespace gfdit
