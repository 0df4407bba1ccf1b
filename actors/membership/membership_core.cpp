#include "actors/membership/membership_core.hpp"

#include <set>

namespace gfdit {

std::vector<membership_output> membership_core::on_hello(const msg::worker_hello& m, std::int64_t now_us) {
  auto& w = workers_[m.worker];
  w.alive = true;
  w.last_seen_us = now_us;
  return {};
}

std::vector<membership_output> membership_core::on_heartbeat(const msg::worker_heartbeat& m, std::int64_t now_us) {
  auto it = workers_.find(m.worker);
  // A heartbeat from a worker declared dead does not revive it: it must say hello again, so
  // the scheduler hears of the new incarnation.
  if (it != workers_.end() && it->second.alive && now_us > it->second.last_seen_us) it->second.last_seen_us = now_us;
  // One never seen said hello before this membership started (a restarted control process):
  // its beat is its hello here.
  if (it == workers_.end()) workers_[m.worker] = worker_state{true, now_us, 0};
  return {};
}

std::vector<membership_output> membership_core::on_form_group(const msg::form_group& m, std::int64_t now_us) {
  std::vector<membership_output> out;
  const std::uint64_t id = group_id_of(m.members);
  std::set<std::int32_t> seen;
  bool ok = !m.members.empty();
  for (auto w : m.members) {
    auto it = workers_.find(w);
    if (!seen.insert(w).second || it == workers_.end() || !it->second.alive ||
        (it->second.group_id != 0 && it->second.group_id != id))
      ok = false;
  }
  auto& g = groups_[id];
  if (!ok || g.active) {
    if (!ok) ++refused_;
    // Re-announce the current state so the asker can reconcile.
    out.push_back(msg::group_view{id, g.epoch, m.members, g.active && ok,
                                  ok ? "already active"
                                     : "refused: a member is unknown, dead, "
                                       "repeated or in another group"});
    if (!g.active && g.members.empty()) groups_.erase(id);
    return out;
  }
  g.members = m.members;
  g.active = true;
  ++g.epoch;
  for (auto w : m.members) workers_[w].group_id = id;
  out.push_back(msg::group_view{id, g.epoch, g.members, true, m.reason});
  return out;
}

void membership_core::deactivate(std::uint64_t id, const char* reason, std::vector<membership_output>& out) {
  auto it = groups_.find(id);
  if (it == groups_.end() || !it->second.active) return;
  it->second.active = false;
  for (auto w : it->second.members) {
    auto wi = workers_.find(w);
    if (wi != workers_.end() && wi->second.group_id == id) wi->second.group_id = 0;
  }
  out.push_back(msg::group_view{id, it->second.epoch, it->second.members, false, reason});
}

std::vector<membership_output> membership_core::on_dissolve_group(const msg::dissolve_group& m, std::int64_t now_us) {
  std::vector<membership_output> out;
  deactivate(m.group_id, m.reason.empty() ? "dissolved" : m.reason.c_str(), out);
  return out;
}

void membership_core::mark_down(std::int32_t w, const char* reason, std::vector<membership_output>& out) {
  auto& ws = workers_[w];
  ws.alive = false;
  if (ws.group_id != 0) deactivate(ws.group_id, "member died", out);
  out.push_back(msg::worker_down{w, ws.last_seen_us, reason});
}

std::vector<membership_output> membership_core::on_tick(std::int64_t now_us) {
  std::vector<membership_output> out;
  for (auto& [w, s] : workers_)
    if (s.alive && now_us - s.last_seen_us > cfg_.heartbeat_timeout_us) mark_down(w, "heartbeat timeout", out);
  return out;
}

}  // namespace gfdit
