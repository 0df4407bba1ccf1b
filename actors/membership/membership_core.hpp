#pragma once
// Membership: the group table and worker liveness, as a pure core.
//   on_hello / on_heartbeat (worker alive at `now`; a first heartbeat counts as a hello, so a
//                           restarted membership learns the workers that are already up)
//   on_form_group / on_dissolve_group -> GroupView
//   on_tick(now)                      -> WorkerDown (and inactive GroupViews) for silent workers
// A group's id is group_id_of(ordered members) and its epoch counts how often that id was
// formed, so a view from an older incarnation of the same member list is recognisable.
// A worker is in at most one active group: a form that breaks this is refused.
#include <cstdint>
#include <map>
#include <variant>
#include <vector>

#include "messages/membership.hpp"

namespace gfdit {

struct membership_config {
  std::int64_t heartbeat_timeout_us = 3'000'000;
};

using membership_output = std::variant<msg::group_view, msg::worker_down>;

class membership_core {
 public:
  explicit membership_core(membership_config cfg = {}) : cfg_(cfg) {}

  std::vector<membership_output> on_hello(const msg::worker_hello& m, std::int64_t now_us);
  std::vector<membership_output> on_heartbeat(const msg::worker_heartbeat& m, std::int64_t now_us);
  std::vector<membership_output> on_form_group(const msg::form_group& m, std::int64_t now_us);
  std::vector<membership_output> on_dissolve_group(const msg::dissolve_group& m, std::int64_t now_us);
  std::vector<membership_output> on_tick(std::int64_t now_us);

  struct worker_state {
    bool alive = false;
    std::int64_t last_seen_us = 0;
    std::uint64_t group_id = 0;  // 0: in no group
  };
  struct group_state {
    std::vector<std::int32_t> members;
    std::uint64_t epoch = 0;
    bool active = false;
  };
  const std::map<std::int32_t, worker_state>& workers() const noexcept { return workers_; }
  const std::map<std::uint64_t, group_state>& groups() const noexcept { return groups_; }
  std::uint64_t refused_forms() const noexcept { return refused_; }

 private:
  void deactivate(std::uint64_t id, const char* reason, std::vector<membership_output>& out);
  void mark_down(std::int32_t w, const char* reason, std::vector<membership_output>& out);

  membership_config cfg_;
  std::map<std::int32_t, worker_state> workers_;
  std::map<std::uint64_t, group_state> groups_;  // inactive ones kept for their epoch
  std::uint64_t refused_ = 0;
};

}  // namespace gfdit
