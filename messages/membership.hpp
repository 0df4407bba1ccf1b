#pragma once
// The membership family: workers join and prove they live; groups are ordered member lists with
// an epoch; the membership actor publishes views and declares deaths.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/hash.hpp"
#include "messages/message.hpp"

namespace gfdit {

// A group's id is the hash of its ordered member list: the order fixes the all-gather
// concatenation and the all-to-all slice mapping, so [0,1] and [1,0] are different groups.
inline std::uint64_t group_id_of(std::span<const std::int32_t> members) noexcept { return hash_sequence(members); }

}  // namespace gfdit

namespace gfdit::msg {

// A checkpoint a worker serves, as clients need to know it.
struct served_model {
  static constexpr std::string_view type_name = "membership.served_model";
  static constexpr std::uint16_t type_version = 1;
  std::string name;
  std::int32_t width = 0;  // pixels: the one size it draws
  std::int32_t height = 0;
  std::vector<std::string> classes;  // class-conditional: one name per label
  std::int32_t default_steps = 0;
  double default_guidance = 0.0;
  GFDIT_FIELDS(name, width, height, classes, default_steps, default_guidance)
};

struct worker_hello {
  static constexpr std::string_view type_name = "membership.worker_hello";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t worker = 0;  // the worker's rank in the world
  std::string node;
  std::string device;
  std::string backend;  // "sim" | "cpu" | "cuda"
  // The checkpoints it serves; empty: every profiled model, from seeded weights (benchmarks).
  std::vector<served_model> models;
  GFDIT_FIELDS(worker, node, device, backend, models)
};

// "Say your hello to me": a worker answers with its WorkerHello, sent to the asker alone (the
// topic's hello would make the scheduler think it restarted). For actors that join a running
// graph and missed the hellos, like a gateway learning which models are served.
struct hello_query {
  static constexpr std::string_view type_name = "membership.hello_query";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t worker = 0;
  GFDIT_FIELDS(worker)
};

struct worker_heartbeat {
  static constexpr std::string_view type_name = "membership.heartbeat";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t worker = 0;
  std::uint64_t seq = 0;
  GFDIT_FIELDS(worker, seq)
};

struct form_group {
  static constexpr std::string_view type_name = "membership.form_group";
  static constexpr std::uint16_t type_version = 1;
  std::vector<std::int32_t> members;  // ordered
  std::string reason;
  GFDIT_FIELDS(members, reason)
};

struct dissolve_group {
  static constexpr std::string_view type_name = "membership.dissolve_group";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t group_id = 0;
  std::string reason;
  GFDIT_FIELDS(group_id, reason)
};

// active=false: the group is gone (dissolved, or a member died).
struct group_view {
  static constexpr std::string_view type_name = "membership.group_view";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t group_id = 0;
  std::uint64_t epoch = 0;
  std::vector<std::int32_t> members;
  bool active = true;
  std::string reason;
  GFDIT_FIELDS(group_id, epoch, members, active, reason)
};

struct worker_down {
  static constexpr std::string_view type_name = "membership.worker_down";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t worker = 0;
  std::int64_t last_seen_us = 0;
  std::string reason;
  GFDIT_FIELDS(worker, last_seen_us, reason)
};

}  // namespace gfdit::msg
