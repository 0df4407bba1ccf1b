#pragma once
// The system family: lifecycle, parameters, heartbeat, log, and delivery failures.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "messages/message.hpp"

namespace gfdit::msg {

// configure -> activate -> deactivate -> shutdown, asked of one actor.
struct lifecycle_command {
  static constexpr std::string_view type_name = "system.lifecycle_command";
  static constexpr std::uint16_t type_version = 1;
  std::string transition;  // "configure" | "activate" | "deactivate" | "shutdown"
  GFDIT_FIELDS(transition)
};

struct lifecycle_state {
  static constexpr std::string_view type_name = "system.lifecycle_state";
  static constexpr std::uint16_t type_version = 1;
  std::string actor;
  std::string state;  // "unconfigured" | "inactive" | "active" | "finalized"
  std::string error;  // why the last transition failed, else empty
  GFDIT_FIELDS(actor, state, error)
};

// Parameters travel as JSON text so every declared type has one wire form.
struct parameter_get {
  static constexpr std::string_view type_name = "system.parameter_get";
  static constexpr std::uint16_t type_version = 1;
  std::string name;  // empty: all parameters
  GFDIT_FIELDS(name)
};

struct parameter_set {
  static constexpr std::string_view type_name = "system.parameter_set";
  static constexpr std::uint16_t type_version = 1;
  std::string name;
  std::string value_json;
  GFDIT_FIELDS(name, value_json)
};

struct parameter_value {
  static constexpr std::string_view type_name = "system.parameter_value";
  static constexpr std::uint16_t type_version = 1;
  std::string actor;
  std::string values_json;  // {"name": value, ...}
  std::string error;        // why a set was refused, else empty
  GFDIT_FIELDS(actor, values_json, error)
};

struct heartbeat {
  static constexpr std::string_view type_name = "system.heartbeat";
  static constexpr std::uint16_t type_version = 1;
  std::string actor;
  std::uint64_t count = 0;
  GFDIT_FIELDS(actor, count)
};

struct log_line {
  static constexpr std::string_view type_name = "system.log";
  static constexpr std::uint16_t type_version = 1;
  std::string actor;
  std::string level;
  std::string text;
  GFDIT_FIELDS(actor, level, text)
};

// Sent back to a sender whose directed message could not be delivered.
struct delivery_failure {
  static constexpr std::string_view type_name = "system.delivery_failure";
  static constexpr std::uint16_t type_version = 1;
  std::string destination;
  std::uint32_t type_id = 0;
  std::uint64_t seq = 0;
  std::uint64_t correlation = 0;
  std::string reason;
  GFDIT_FIELDS(destination, type_id, seq, correlation, reason)
};

// A node's announcement to its peers: which local actors it hosts and which topics they
// subscribe to. Sent on connect and whenever a subscription changes.
struct node_hello {
  static constexpr std::string_view type_name = "system.node_hello";
  static constexpr std::uint16_t type_version = 1;
  std::string node;
  std::string endpoint;  // where the sender's bus listens
  std::vector<std::string> actors;
  std::vector<std::string> topics;
  bool want_reply = false;  // the first hello asks the peer for its own
  GFDIT_FIELDS(node, endpoint, actors, topics, want_reply)
};

}  // namespace gfdit::msg
