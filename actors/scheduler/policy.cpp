#include "actors/scheduler/policy.hpp"

#include <algorithm>
#include <limits>
#include <mutex>

#include "actors/scheduler/policies/builtin.hpp"
#include "messages/membership.hpp"

namespace gfdit {

std::string_view to_string(event_kind e) noexcept {
  switch (e) {
    case event_kind::arrival:
      return "arrival";
    case event_kind::task_done:
      return "task_done";
    case event_kind::task_failed:
      return "task_failed";
    case event_kind::worker_up:
      return "worker_up";
    case event_kind::worker_down:
      return "worker_down";
    case event_kind::cancel:
      return "cancel";
    case event_kind::tick:
      return "tick";
  }
  return "?";
}

decision decision::form(std::vector<std::int32_t> members) {
  decision d;
  d.what = kind::form_group;
  d.group_id = group_id_of(members);
  d.members = std::move(members);
  return d;
}
decision decision::dissolve(std::uint64_t group_id) {
  decision d;
  d.what = kind::dissolve_group;
  d.group_id = group_id;
  return d;
}
decision decision::assign(std::uint64_t request_id, std::uint64_t group_id) {
  decision d;
  d.what = kind::assign;
  d.request_id = request_id;
  d.group_id = group_id;
  return d;
}
decision decision::preempt(std::uint64_t request_id, std::string reason) {
  decision d;
  d.what = kind::preempt;
  d.request_id = request_id;
  d.reason = std::move(reason);
  return d;
}
decision decision::reject(std::uint64_t request_id, std::string reason) {
  decision d;
  d.what = kind::reject;
  d.request_id = request_id;
  d.reason = std::move(reason);
  return d;
}

namespace {

struct registry {
  std::mutex mu;
  std::map<std::string, policy_factory, std::less<>> factories;
};

registry& the_registry() {
  static registry r;
  static std::once_flag once;
  std::call_once(once, [] {
    for (auto& [name, f] : builtin_policies()) r.factories.emplace(name, f);
  });
  return r;
}

}  // namespace

void register_policy(std::string name, policy_factory factory) {
  auto& r = the_registry();
  std::lock_guard lock(r.mu);
  r.factories[std::move(name)] = std::move(factory);
}

result<std::unique_ptr<policy>> make_policy(std::string_view spec) {
  const auto colon = spec.find(':');
  const std::string_view name = spec.substr(0, colon);
  const std::string_view arg = colon == std::string_view::npos ? "" : spec.substr(colon + 1);
  policy_factory f;
  {
    auto& r = the_registry();
    std::lock_guard lock(r.mu);
    auto it = r.factories.find(name);
    if (it == r.factories.end()) {
      std::string known;
      for (auto& [k, v] : r.factories) known += (known.empty() ? "" : ", ") + k;
      return make_error(errc::not_found, "unknown policy '" + std::string(name) + "' (known: " + known + ")");
    }
    f = it->second;
  }
  auto p = f(arg);
  if (!p) return make_error(errc::invalid_argument, "policy '" + std::string(spec) + "': bad argument");
  return p;
}

std::vector<std::string> policy_names() {
  auto& r = the_registry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> out;
  for (auto& [k, v] : r.factories) out.push_back(k);
  return out;
}

planner::planner(const policy_view& view, std::vector<decision>& out) : view_(view), out_(out) {
  for (const auto& [id, w] : view.workers)
    if (w.alive && !w.busy) free_.insert(id);
}

std::vector<std::int32_t> planner::pick(const request_view& r, std::int32_t degree) const {
  std::vector<std::int32_t> members;
  if (degree < 1 || degree > free_count()) return members;
  auto serves = [&](std::int32_t w) {
    auto it = view_.workers.find(w);
    return it != view_.workers.end() && it->second.serves(r.model);
  };
  for (auto h : r.holders)
    if (static_cast<std::int32_t>(members.size()) < degree && free_.count(h) && serves(h)) members.push_back(h);
  for (auto w : free_) {
    if (static_cast<std::int32_t>(members.size()) >= degree) break;
    if (std::find(members.begin(), members.end(), w) == members.end() && serves(w)) members.push_back(w);
  }
  if (static_cast<std::int32_t>(members.size()) < degree) members.clear();
  return members;
}

void planner::place(const request_view& r, const std::vector<std::int32_t>& members) {
  const std::uint64_t gid = group_id_of(members);
  auto existing = view_.groups.find(gid);
  const bool reuse = existing != view_.groups.end() && !existing->second.busy && dissolved_.count(gid) == 0;
  if (!reuse) {
    // Free the chosen workers from the idle groups they sit in.
    for (auto w : members) {
      auto wi = view_.workers.find(w);
      if (wi == view_.workers.end() || wi->second.group_id == 0) continue;
      if (dissolved_.insert(wi->second.group_id).second) out_.push_back(decision::dissolve(wi->second.group_id));
    }
    out_.push_back(decision::form(members));
  }
  out_.push_back(decision::assign(r.id, gid));
  for (auto w : members) free_.erase(w);
  // Workers that shared a dissolved group but were not chosen stay free and groupless.
}

bool planner::place(const request_view& r, std::int32_t degree) {
  auto m = pick(r, degree);
  if (m.empty()) return false;
  place(r, m);
  return true;
}

int fastest_slot(const request_view& r, double min_gain) {
  int best = 0;
  for (int s = 1; s < max_degree_slots; ++s)
    if (r.next_task_us[s] < r.next_task_us[best] * (1.0 - min_gain)) best = s;
  return best;
}

std::int32_t floor_pow2(std::int32_t n) noexcept {
  std::int32_t p = 1;
  while (p * 2 <= n) p *= 2;
  return n < 1 ? 0 : p;
}

}  // namespace gfdit
