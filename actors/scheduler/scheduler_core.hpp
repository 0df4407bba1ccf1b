#pragma once
// The scheduler as a pure core: one message in, the messages it causes out.
//
//   on_admitted     a request joins: its task DAG is prepare -> denoise chunks of
//                   `chunk_steps` -> decode
//   on_task_done    a group's first member reports a task (ok or failed)
//   on_cancel       the client gives up
//   on_worker_hello a worker joins (or comes back: its old state is gone)
//   on_worker_down  membership declares a worker dead
//   on_group_view   membership confirms a group (epochs)
//   on_tick         time passes (for policies that act on time alone)
//
// On every event the policy is consulted and its decisions applied. The core keeps the cluster
// view (workers, groups, which are busy), and for every request where its latent lives and in
// which layout. It emits TaskAssign, a Reshard before any task whose group differs from where
// the state lives, Preempt when a policy's preemption takes effect (always at a chunk
// boundary: a running task is never interrupted), FormGroup/DissolveGroup for membership, and
// exactly one RequestDone per admitted request.
// Worker death: the task running on the dead worker's group fails and the request is re-run
// from its last completed chunk: chunk ends leave a host checkpoint, so state lost with a
// holder is restored from it ("checkpoint" layout, charged as a reshard).
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "actors/scheduler/policy.hpp"
#include "actors/serving/cost_model.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace gfdit {

struct scheduler_config {
  std::int32_t chunk_steps = 4;
  std::int32_t max_retries = 8;  // failed tasks of one request before it fails for good
  // A restarted scheduler starts above any id its previous life used: a report of an old task
  // that is still running must never match a new one.
  std::uint64_t first_task_id = 1;
};

struct scheduler_stats {
  std::uint64_t policy_calls = 0;
  std::uint64_t decisions_applied = 0;
  std::uint64_t decisions_invalid = 0;
  std::uint64_t groups_formed = 0;
  std::uint64_t groups_dissolved = 0;
  std::uint64_t reshards = 0;
  double reshard_est_us = 0.0;
  std::uint64_t preemptions = 0;
  std::uint64_t tasks_dispatched = 0;
  std::uint64_t tasks_failed = 0;
  std::uint64_t stale_reports = 0;

  // The counters by name, in one order: the metrics and `gfdit replay`'s state both list these.
  std::array<std::pair<const char*, std::uint64_t>, 10> named() const {
    return {{{"policy_calls", policy_calls},
             {"decisions_applied", decisions_applied},
             {"decisions_invalid", decisions_invalid},
             {"groups_formed", groups_formed},
             {"groups_dissolved", groups_dissolved},
             {"reshards", reshards},
             {"preemptions", preemptions},
             {"tasks_dispatched", tasks_dispatched},
             {"tasks_failed", tasks_failed},
             {"stale_reports", stale_reports}}};
  }
};

// A finished chunk, for the request's reply_to.
struct progress_note {
  std::string to;
  msg::progress progress;
};

using scheduler_output = std::variant<msg::task_assign, msg::reshard, msg::preempt, msg::form_group,
                                      msg::dissolve_group, msg::request_done, progress_note>;

class scheduler_core {
 public:
  scheduler_core(const cost_model& costs, std::unique_ptr<policy> pol, scheduler_config cfg = {});

  std::vector<scheduler_output> on_admitted(const msg::admitted& m, std::int64_t now_us);
  std::vector<scheduler_output> on_task_done(const msg::task_done& m, std::int64_t now_us);
  std::vector<scheduler_output> on_cancel(const msg::cancel& m, std::int64_t now_us);
  std::vector<scheduler_output> on_worker_hello(const msg::worker_hello& m, std::int64_t now_us);
  std::vector<scheduler_output> on_worker_down(const msg::worker_down& m, std::int64_t now_us);
  std::vector<scheduler_output> on_group_view(const msg::group_view& m, std::int64_t now_us);
  std::vector<scheduler_output> on_tick(std::int64_t now_us);

  const scheduler_stats& stats() const noexcept { return stats_; }
  const policy& current_policy() const noexcept { return *policy_; }
  const std::map<std::uint64_t, request_view>& requests() const noexcept { return views_; }
  const std::map<std::int32_t, worker_view>& workers() const noexcept { return workers_; }
  const std::map<std::uint64_t, group_info>& groups() const noexcept { return groups_; }
  // Empty when the cluster view is consistent (each worker in at most one group, busy flags
  // matching running tasks); else what is wrong. For tests and debug builds.
  std::string check_invariants() const;

 private:
  struct request_extra {
    std::string client_tag;
    std::uint64_t task_id = 0;  // the outstanding task, 0 when waiting
    stage task_stage = stage::prepare;
    std::int32_t task_step_end = 0;
    std::int64_t run_us = 0;
    std::int64_t reshard_us = 0;
    std::int64_t gpu_us = 0;  // task time x group size, failed tries included
    std::int32_t retries = 0;
    std::int32_t preemptions = 0;
    deadline_entry key;  // its entry in the deadline index while waiting
    bool late = false;
    msg::generate_request request;  // passed on in every task (real backends compute from it)
    std::uint64_t result_hash = 0;  // from the decode task's report
  };
  using out_t = std::vector<scheduler_output>;

  void consult(event_kind e, std::int64_t now_us, out_t& out);
  void apply(const decision& d, std::int64_t now_us, out_t& out);
  void dispatch(std::uint64_t rid, group_info& g, std::int64_t now_us, out_t& out);
  void finish(std::uint64_t rid, const char* status, std::string error, std::int64_t now_us, out_t& out);
  void task_failed(std::uint64_t rid, const std::string& why, std::int64_t now_us, out_t& out);
  void release_group(group_info& g);
  void remove_group(std::uint64_t gid, const char* reason, out_t& out);
  void worker_lost(std::int32_t w, const char* reason, std::int64_t now_us, out_t& out);
  void refresh(request_view& r) const;
  void set_waiting(const request_view& r, bool waiting);
  void mark_late(std::int64_t now_us);

  const cost_model& costs_;
  std::unique_ptr<policy> policy_;
  scheduler_config cfg_;
  scheduler_stats stats_;
  std::map<std::uint64_t, request_view> views_;
  std::map<std::uint64_t, request_extra> extra_;
  std::set<std::uint64_t> waiting_;
  std::set<deadline_entry> waiting_by_deadline_;  // not late (and best effort)
  std::set<deadline_entry> waiting_late_;
  std::set<std::pair<std::int64_t, std::uint64_t>> by_latest_start_;  // the not-late ones
  std::map<std::int32_t, worker_view> workers_;
  std::map<std::uint64_t, group_info> groups_;
  std::map<std::uint64_t, std::uint64_t> group_task_;  // busy group -> its task id
  std::uint64_t next_task_id_ = 1;
  static constexpr std::size_t max_early_cancels = 1024;
  std::deque<std::pair<std::string, std::string>> cancelled_tags_;  // (client tag, reason) not yet admitted
  bool ever_had_workers_ = false;
};

}  // namespace gfdit
