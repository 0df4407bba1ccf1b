#pragma once
// What parameters an actor type declares, learned by running its on_configure against a
// context that records declarations and does nothing else (no bus, no timers, no threads).
// An actor whose configure needs more than that fails the probe; callers then fall back to
// checking only the shape of the values.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace gfdit::launch {

// {"name": {"type", "default", "value", "description"}} or nullopt when the probe failed.
std::optional<nlohmann::json> declared_parameters(const std::string& type);

// Runs the type's on_configure with `values` as parameter overrides, as the node will: the
// declared types, the validators and unknown names are all checked. Only meaningful where
// declared_parameters() succeeded.
result<void> probe_configure(const std::string& type, const nlohmann::json& values);

}  // namespace gfdit::launch
