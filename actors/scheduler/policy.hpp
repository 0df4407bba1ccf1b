#pragma once
// The scheduling policy interface: an immutable view of the cluster in, decisions out.
//
// The scheduler calls decide() on every event (arrival, task end, worker join or death,
// cancellation, tick). A decision the scheduler cannot apply (a busy group, a dead member) is
// skipped and counted, never fatal, so a buggy policy cannot corrupt the scheduler's state.
// Decisions are applied in order: dissolve before you form, form before you assign.
//
// The unit of work is one trajectory task: prepare, one chunk of denoising steps, or decode.
// An assignment runs the request's *next* task on a group; at the task's end the request is
// waiting again and the policy decides anew, so every chunk boundary is a preemption point and
// a chance to change the request's degree. See README.md for a walkthrough.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "actors/serving/cost_model.hpp"
#include "actors/serving/state_layout.hpp"
#include "common/result.hpp"

namespace gfdit {

inline constexpr int max_degree_slots = 4;  // degrees 1, 2, 4, 8
constexpr int degree_slot(std::int32_t degree) noexcept {
  return degree <= 1 ? 0 : degree <= 2 ? 1 : degree <= 4 ? 2 : 3;
}
constexpr std::int32_t slot_degree(int slot) noexcept { return 1 << slot; }

struct request_view {
  std::uint64_t id = 0;
  std::string model;
  std::string class_name;
  const model_profile* profile = nullptr;
  std::int32_t priority = 0;
  std::int64_t arrival_us = 0;
  bool has_deadline = false;
  std::int64_t deadline_us = 0;
  std::int64_t tokens = 0;
  std::int32_t steps_total = 0;
  std::int32_t steps_done = 0;
  bool prepared = false;
  stage next_stage = stage::prepare;
  std::int32_t next_steps = 0;  // steps in the next task (0 outside denoise)
  bool running = false;
  bool preempt_requested = false;
  std::vector<std::int32_t> holders;  // where the state lives, in layout order
  state_layout layout = state_layout::none;
  std::uint64_t group_id = 0;  // the group running it now, else the one it last ran on
  std::int32_t regroupings = 0;
  // Estimates by degree slot (1, 2, 4, 8); +inf beyond the model's max_degree.
  std::array<double, max_degree_slots> next_task_us{};  // the next task alone
  std::array<double, max_degree_slots> remaining_us{};  // everything left, at one degree
  double reshard_us = 0.0;                              // cost of moving its state to another member list
};

struct worker_view {
  std::int32_t id = 0;
  bool alive = false;
  bool busy = false;
  std::uint64_t group_id = 0;       // 0: in no group
  std::vector<std::string> models;  // the checkpoints it serves; empty: every model (seeded)
  bool serves(std::string_view model) const {
    return models.empty() || std::find(models.begin(), models.end(), model) != models.end();
  }
};

struct group_info {
  std::uint64_t id = 0;
  std::vector<std::int32_t> members;
  std::uint64_t epoch = 0;
  bool busy = false;
  std::uint64_t request_id = 0;  // running now, when busy
};

// An entry of the deadline index: ordered by (deadline, id); `r` points into `requests`.
struct deadline_entry {
  std::int64_t deadline_us = 0;  // INT64_MAX for best-effort requests
  std::uint64_t id = 0;
  const request_view* r = nullptr;
  // deadline - remaining time at the fastest degree: a request still waiting after this is
  // late at any degree. Fixed while it waits, so a walk can skip late ones without touching r.
  std::int64_t latest_start_us = 0;
  friend bool operator<(const deadline_entry& a, const deadline_entry& b) noexcept {
    return a.deadline_us != b.deadline_us ? a.deadline_us < b.deadline_us : a.id < b.id;
  }
};

enum class event_kind : std::uint8_t { arrival, task_done, task_failed, worker_up, worker_down, cancel, tick };
std::string_view to_string(event_kind e) noexcept;

struct policy_view {
  std::int64_t now_us = 0;
  event_kind event = event_kind::tick;
  std::int32_t chunk_steps = 1;
  const std::map<std::uint64_t, request_view>& requests;  // every live request, by id
  const std::set<std::uint64_t>& waiting;                 // ids not running, ascending
  // The same waiting requests by (deadline, id), in two parts: those that can still finish by
  // their deadline at their fastest degree (best-effort ones last), and those that cannot (late;
  // a request moves there once `now` passes its latest start, and back when it makes progress).
  // Walking them lets a deadline-ordered policy stop after the first few.
  const std::set<deadline_entry>& waiting_by_deadline;
  const std::set<deadline_entry>& waiting_late;
  const std::map<std::int32_t, worker_view>& workers;
  const std::map<std::uint64_t, group_info>& groups;
  std::int32_t idle_workers = 0;  // alive and not busy
  std::int32_t alive_workers = 0;
};

struct decision {
  enum class kind : std::uint8_t { form_group, dissolve_group, assign, preempt, reject };
  kind what = kind::assign;
  std::vector<std::int32_t> members;  // form_group
  std::uint64_t group_id = 0;         // dissolve_group, assign
  std::uint64_t request_id = 0;       // assign, preempt, reject
  std::string reason;

  static decision form(std::vector<std::int32_t> members);
  static decision dissolve(std::uint64_t group_id);
  static decision assign(std::uint64_t request_id, std::uint64_t group_id);
  static decision preempt(std::uint64_t request_id, std::string reason);
  static decision reject(std::uint64_t request_id, std::string reason);
};

class policy {
 public:
  virtual ~policy() = default;
  virtual std::string_view name() const = 0;
  // Appends decisions to `out`. Must be deterministic in the view (and the policy's own state).
  virtual void decide(const policy_view& view, std::vector<decision>& out) = 0;
  // The fewest workers any group of this policy holds: a graph with fewer can serve nothing.
  virtual std::int32_t min_group_size() const { return 1; }
};

// Registry: built-ins are present from the start; plugins add theirs when they load.
// A spec is "name" or "name:arg" (e.g. "static:4" for degree-4 static groups).
using policy_factory = std::function<std::unique_ptr<policy>(std::string_view arg)>;
void register_policy(std::string name, policy_factory factory);
result<std::unique_ptr<policy>> make_policy(std::string_view spec);
std::vector<std::string> policy_names();

// A helper for elastic policies: tracks which workers are still free during one decide() call
// and turns "run request r on these workers" into dissolve/form/assign decisions.
class planner {
 public:
  planner(const policy_view& view, std::vector<decision>& out);

  std::int32_t free_count() const noexcept { return static_cast<std::int32_t>(free_.size()); }
  bool is_free(std::int32_t w) const { return free_.count(w) != 0; }
  // Picks `degree` free workers that serve r's model: its holders first (no reshard when they
  // suffice and the degree is unchanged), then the lowest free ids. Empty when not enough are free.
  std::vector<std::int32_t> pick(const request_view& r, std::int32_t degree) const;
  // Emits the decisions to run r's next task on `members` (all free); marks them taken.
  void place(const request_view& r, const std::vector<std::int32_t>& members);
  bool place(const request_view& r, std::int32_t degree);

 private:
  const policy_view& view_;
  std::vector<decision>& out_;
  std::set<std::int32_t> free_;
  std::set<std::uint64_t> dissolved_;
};

// The fastest degree slot for the next task (ties go to the smaller degree), and the largest
// power of two <= n.
int fastest_slot(const request_view& r, double min_gain = 0.0);
std::int32_t floor_pow2(std::int32_t n) noexcept;

}  // namespace gfdit
