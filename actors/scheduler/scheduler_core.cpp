#include "actors/scheduler/scheduler_core.hpp"

#include <algorithm>
#include <limits>

namespace gfdit {

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Where a task of stage `s` on `degree` workers leaves the state.
state_layout layout_after(stage s, std::size_t degree) {
  if (degree <= 1 || s == stage::decode) return state_layout::owner_only;
  return s == stage::prepare ? state_layout::replicated : state_layout::token_sharded;
}

// Where a task of stage `s` on `degree` workers needs the state before it runs.
state_layout layout_before(stage s, std::size_t degree) {
  if (degree <= 1) return state_layout::owner_only;
  return s == stage::denoise ? state_layout::token_sharded : state_layout::replicated;
}

}  // namespace

scheduler_core::scheduler_core(const cost_model& costs, std::unique_ptr<policy> pol, scheduler_config cfg)
    : costs_(costs), policy_(std::move(pol)), cfg_(cfg) {
  cfg_.chunk_steps = std::max(1, cfg_.chunk_steps);
  next_task_id_ = std::max<std::uint64_t>(1, cfg_.first_task_id);
}

void scheduler_core::refresh(request_view& r) const {
  const model_profile& p = *r.profile;
  const std::int32_t left = r.steps_total - r.steps_done;
  if (!r.prepared) {
    r.next_stage = stage::prepare;
    r.next_steps = 0;
  } else if (left > 0) {
    r.next_stage = stage::denoise;
    r.next_steps = std::min(left, cfg_.chunk_steps);
  } else {
    r.next_stage = stage::decode;
    r.next_steps = 0;
  }
  for (int s = 0; s < max_degree_slots; ++s) {
    const std::int32_t d = slot_degree(s);
    if (d > p.max_degree) {
      r.next_task_us[s] = r.remaining_us[s] = inf;
      continue;
    }
    r.next_task_us[s] = cost_model::task_us(p, r.next_stage, r.tokens, r.next_steps, d);
    r.remaining_us[s] = (r.prepared ? 0.0 : cost_model::task_us(p, stage::prepare, r.tokens, 0, d)) +
                        cost_model::task_us(p, stage::denoise, r.tokens, left, d) +
                        cost_model::task_us(p, stage::decode, r.tokens, 0, d);
  }
  r.reshard_us = cost_model::reshard_us(p, r.tokens);
}

void scheduler_core::set_waiting(const request_view& r, bool waiting) {
  request_extra& x = extra_.at(r.id);
  if (waiting) {
    if (!waiting_.insert(r.id).second) return;
    constexpr auto never = std::numeric_limits<std::int64_t>::max();
    x.key = deadline_entry{r.has_deadline ? r.deadline_us : never, r.id, &r, never};
    if (r.has_deadline) {
      const double best = *std::min_element(r.remaining_us.begin(), r.remaining_us.end());
      x.key.latest_start_us = r.deadline_us - static_cast<std::int64_t>(best);
      by_latest_start_.insert({x.key.latest_start_us, r.id});
    }
    x.late = false;
    waiting_by_deadline_.insert(x.key);
  } else {
    if (!waiting_.erase(r.id)) return;
    (x.late ? waiting_late_ : waiting_by_deadline_).erase(x.key);
    by_latest_start_.erase({x.key.latest_start_us, r.id});
    x.late = false;
  }
}

// Requests whose latest start has passed cannot finish in time at any degree: move them to the
// late index. Each waiting request moves at most once, so this is amortised O(log n).
void scheduler_core::mark_late(std::int64_t now_us) {
  while (!by_latest_start_.empty() && by_latest_start_.begin()->first < now_us) {
    const auto id = by_latest_start_.begin()->second;
    by_latest_start_.erase(by_latest_start_.begin());
    request_extra& x = extra_.at(id);
    waiting_by_deadline_.erase(x.key);
    waiting_late_.insert(x.key);
    x.late = true;
  }
}

std::vector<scheduler_output> scheduler_core::on_admitted(const msg::admitted& m, std::int64_t now_us) {
  out_t out;
  if (views_.count(m.request_id) || m.request_id == 0) return out;  // a duplicate: ignore
  const model_profile* p = costs_.find(m.request.model);
  request_view r;
  r.id = m.request_id;
  r.model = m.request.model;
  r.class_name = m.request.class_name;
  r.profile = p;
  r.priority = m.request.priority;
  r.arrival_us = m.arrival_us;
  r.has_deadline = m.has_deadline;
  r.deadline_us = m.deadline_us;
  r.tokens = m.tokens;
  r.steps_total = m.request.steps;
  request_extra x;
  x.client_tag = m.request.client_tag;
  x.request = m.request;
  x.request.request_id = m.request_id;
  views_.emplace(r.id, std::move(r));
  extra_.emplace(m.request_id, std::move(x));
  if (!p) {  // admission validated the model; a different catalogue here is a deployment error
    finish(m.request_id, "failed", "model '" + m.request.model + "' has no cost profile", now_us, out);
    return out;
  }
  for (auto c = cancelled_tags_.begin(); c != cancelled_tags_.end(); ++c)
    if (!m.request.client_tag.empty() && c->first == m.request.client_tag) {
      const std::string why = c->second;
      cancelled_tags_.erase(c);
      finish(m.request_id, "cancelled", why, now_us, out);
      return out;
    }
  refresh(views_.at(m.request_id));
  set_waiting(views_.at(m.request_id), true);
  if (ever_had_workers_ && std::none_of(workers_.begin(), workers_.end(), [](auto& w) { return w.second.alive; })) {
    finish(m.request_id, "failed", "no live workers", now_us, out);
    return out;
  }
  consult(event_kind::arrival, now_us, out);
  return out;
}

void scheduler_core::release_group(group_info& g) {
  g.busy = false;
  g.request_id = 0;
  group_task_.erase(g.id);
  for (auto w : g.members) {
    auto it = workers_.find(w);
    if (it != workers_.end()) it->second.busy = false;
  }
}

std::vector<scheduler_output> scheduler_core::on_task_done(const msg::task_done& m, std::int64_t now_us) {
  out_t out;
  // Free the group if this report is for the task it runs.
  auto g = groups_.find(m.group_id);
  auto gt = group_task_.find(m.group_id);
  if (g != groups_.end() && gt != group_task_.end() && gt->second == m.task_id) release_group(g->second);

  auto xi = extra_.find(m.request_id);
  if (xi == extra_.end() || xi->second.task_id != m.task_id) {
    ++stats_.stale_reports;  // a task of a cancelled request, or one already given up on
    consult(event_kind::task_done, now_us, out);
    return out;
  }
  request_view& r = views_.at(m.request_id);
  request_extra& x = xi->second;
  x.task_id = 0;
  r.running = false;
  const std::int64_t degree = g != groups_.end() ? static_cast<std::int64_t>(g->second.members.size()) : 1;
  x.gpu_us += std::max<std::int64_t>(0, m.end_us - m.start_us) * degree;
  if (!m.ok) {
    task_failed(m.request_id, m.error, now_us, out);
    consult(event_kind::task_failed, now_us, out);
    return out;
  }
  x.run_us += std::max<std::int64_t>(0, m.compute_us);
  x.reshard_us += std::max<std::int64_t>(0, m.reshard_us);
  if (g != groups_.end()) {
    r.holders = g->second.members;
  }
  r.layout = layout_after(x.task_stage, r.holders.size());
  if (x.task_stage == stage::decode) {
    x.result_hash = m.result_hash;
    r.holders.resize(std::min<std::size_t>(r.holders.size(), 1));
    finish(m.request_id, "done", "", now_us, out);
    consult(event_kind::task_done, now_us, out);
    return out;
  }
  if (x.task_stage == stage::prepare) {
    r.prepared = true;
  } else {
    r.steps_done = x.task_step_end;
    if (x.request.progress && !x.request.reply_to.empty())
      out.push_back(progress_note{x.request.reply_to, msg::progress{r.id, x.client_tag, r.steps_done, r.steps_total,
                                                                    static_cast<std::int32_t>(degree)}});
  }
  refresh(r);
  set_waiting(r, true);
  if (r.preempt_requested) {
    r.preempt_requested = false;
    ++x.preemptions;
    ++stats_.preemptions;
    out.push_back(msg::preempt{r.id, r.steps_done, "policy"});
  }
  consult(event_kind::task_done, now_us, out);
  return out;
}

void scheduler_core::task_failed(std::uint64_t rid, const std::string& why, std::int64_t now_us, out_t& out) {
  ++stats_.tasks_failed;
  request_extra& x = extra_.at(rid);
  request_view& r = views_.at(rid);
  x.task_id = 0;
  r.running = false;
  if (++x.retries > cfg_.max_retries) {
    finish(rid, "failed", "task failed " + std::to_string(x.retries) + " times; last: " + why, now_us, out);
    return;
  }
  // Progress stays at the last completed chunk; the state is where that chunk left it.
  refresh(r);
  set_waiting(r, true);
}

std::vector<scheduler_output> scheduler_core::on_cancel(const msg::cancel& m, std::int64_t now_us) {
  out_t out;
  std::uint64_t rid = m.request_id;
  if (rid == 0 && !m.client_tag.empty()) {
    for (const auto& [id, x] : extra_)
      if (x.client_tag == m.client_tag) rid = id;
    if (rid == 0) {
      // Not here yet (admission is on its way): cancelled on arrival. Bounded: the oldest go.
      cancelled_tags_.push_back({m.client_tag, m.reason});
      if (cancelled_tags_.size() > max_early_cancels) cancelled_tags_.pop_front();
      return out;
    }
  }
  if (!views_.count(rid)) return out;
  // A running task is not interrupted: its group stays busy until the task reports.
  finish(rid, "cancelled", m.reason, now_us, out);
  consult(event_kind::cancel, now_us, out);
  return out;
}

std::vector<scheduler_output> scheduler_core::on_worker_hello(const msg::worker_hello& m, std::int64_t now_us) {
  out_t out;
  auto it = workers_.find(m.worker);
  if (it != workers_.end() && it->second.alive)
    worker_lost(m.worker, "worker restarted", now_us, out);  // whatever it held is gone
  auto& w = workers_[m.worker];
  w = worker_view{m.worker, true, false, 0, {}};
  for (const auto& s : m.models) w.models.push_back(s.name);
  ever_had_workers_ = true;
  consult(event_kind::worker_up, now_us, out);
  return out;
}

void scheduler_core::remove_group(std::uint64_t gid, const char* reason, out_t& out) {
  auto g = groups_.find(gid);
  if (g == groups_.end()) return;
  for (auto w : g->second.members) {
    auto wi = workers_.find(w);
    if (wi != workers_.end() && wi->second.group_id == gid) {
      wi->second.group_id = 0;
      wi->second.busy = false;
    }
  }
  group_task_.erase(gid);
  out.push_back(msg::dissolve_group{gid, reason});
  groups_.erase(g);
  ++stats_.groups_dissolved;
}

void scheduler_core::worker_lost(std::int32_t w, const char* reason, std::int64_t now_us, out_t& out) {
  auto wi = workers_.find(w);
  if (wi == workers_.end()) return;
  if (wi->second.group_id != 0) {
    auto g = groups_.find(wi->second.group_id);
    if (g != groups_.end() && g->second.busy) {
      const std::uint64_t rid = g->second.request_id;
      auto xi = extra_.find(rid);
      if (xi != extra_.end() && xi->second.task_id == group_task_[g->first])
        task_failed(rid, std::string("worker ") + std::to_string(w) + " lost", now_us, out);
    }
    remove_group(wi->second.group_id, reason, out);
  }
  wi->second.alive = false;
  wi->second.busy = false;
  wi->second.group_id = 0;
  // State on the lost worker: a replica survives on the other holders; anything else comes back
  // from the last chunk's checkpoint.
  for (auto& [id, r] : views_) {
    if (std::find(r.holders.begin(), r.holders.end(), w) == r.holders.end()) continue;
    if (r.layout == state_layout::replicated && r.holders.size() > 1) {
      r.holders.erase(std::remove(r.holders.begin(), r.holders.end(), w), r.holders.end());
    } else {
      r.holders.clear();
      r.layout = state_layout::checkpoint;
    }
  }
}

std::vector<scheduler_output> scheduler_core::on_worker_down(const msg::worker_down& m, std::int64_t now_us) {
  out_t out;
  auto wi = workers_.find(m.worker);
  if (wi == workers_.end() || !wi->second.alive) return out;
  worker_lost(m.worker, "member died", now_us, out);
  if (std::none_of(workers_.begin(), workers_.end(), [](auto& w) { return w.second.alive; })) {
    std::vector<std::uint64_t> ids;
    for (auto& [id, r] : views_) ids.push_back(id);
    for (auto id : ids) finish(id, "failed", "no live workers", now_us, out);
  }
  consult(event_kind::worker_down, now_us, out);
  return out;
}

std::vector<scheduler_output> scheduler_core::on_group_view(const msg::group_view& m, std::int64_t now_us) {
  auto g = groups_.find(m.group_id);
  if (g != groups_.end() && m.active) g->second.epoch = m.epoch;
  // An inactive view is followed by WorkerDown (a death) or answers our own dissolve.
  return {};
}

std::vector<scheduler_output> scheduler_core::on_tick(std::int64_t now_us) {
  out_t out;
  consult(event_kind::tick, now_us, out);
  return out;
}

void scheduler_core::consult(event_kind e, std::int64_t now_us, out_t& out) {
  std::int32_t idle = 0, alive = 0;
  for (const auto& [id, w] : workers_) {
    alive += w.alive;
    idle += w.alive && !w.busy;
  }
  mark_late(now_us);
  policy_view v{now_us,        e,        cfg_.chunk_steps, views_, waiting_, waiting_by_deadline_,
                waiting_late_, workers_, groups_,          idle,   alive};
  std::vector<decision> ds;
  ++stats_.policy_calls;
  policy_->decide(v, ds);
  for (const auto& d : ds) apply(d, now_us, out);
}

void scheduler_core::apply(const decision& d, std::int64_t now_us, out_t& out) {
  auto invalid = [&] { ++stats_.decisions_invalid; };
  switch (d.what) {
    case decision::kind::form_group: {
      const std::uint64_t gid = group_id_of(d.members);
      if (d.members.empty() || d.members.size() > 64 || groups_.count(gid)) return invalid();
      std::set<std::int32_t> seen;
      for (auto w : d.members) {
        auto wi = workers_.find(w);
        if (!seen.insert(w).second || wi == workers_.end() || !wi->second.alive || wi->second.group_id != 0)
          return invalid();
      }
      group_info g;
      g.id = gid;
      g.members = d.members;
      for (auto w : d.members) workers_[w].group_id = gid;
      groups_.emplace(gid, std::move(g));
      ++stats_.groups_formed;
      out.push_back(msg::form_group{d.members, d.reason});
      break;
    }
    case decision::kind::dissolve_group: {
      auto g = groups_.find(d.group_id);
      if (g == groups_.end() || g->second.busy) return invalid();
      remove_group(d.group_id, d.reason.empty() ? "policy" : d.reason.c_str(), out);
      break;
    }
    case decision::kind::assign: {
      auto g = groups_.find(d.group_id);
      auto r = views_.find(d.request_id);
      if (g == groups_.end() || g->second.busy || r == views_.end() || r->second.running) return invalid();
      if (static_cast<std::int32_t>(g->second.members.size()) > r->second.profile->max_degree) return invalid();
      for (auto w : g->second.members) {
        const auto& wv = workers_.at(w);
        if (!wv.alive || wv.busy || !wv.serves(r->second.model)) return invalid();
      }
      dispatch(d.request_id, g->second, now_us, out);
      break;
    }
    case decision::kind::preempt: {
      auto r = views_.find(d.request_id);
      if (r == views_.end()) return invalid();
      if (r->second.running) r->second.preempt_requested = true;  // takes effect at the boundary
      break;
    }
    case decision::kind::reject: {
      auto r = views_.find(d.request_id);
      if (r == views_.end() || r->second.running) return invalid();
      finish(d.request_id, "rejected", d.reason.empty() ? "policy" : d.reason, now_us, out);
      break;
    }
  }
  ++stats_.decisions_applied;
}

void scheduler_core::dispatch(std::uint64_t rid, group_info& g, std::int64_t now_us, out_t& out) {
  request_view& r = views_.at(rid);
  request_extra& x = extra_.at(rid);
  msg::task_assign t;
  t.task_id = next_task_id_++;
  t.request_id = rid;
  t.model = r.model;
  t.tokens = r.tokens;
  t.stage = std::string(to_string(r.next_stage));
  t.step_begin = r.steps_done;
  t.step_end = r.steps_done + r.next_steps;
  t.group_id = g.id;
  t.epoch = g.epoch;
  t.members = g.members;
  t.input = msg::artifact{rid, r.holders, std::string(to_string(r.layout)), r.steps_done};
  t.output_layout = std::string(to_string(layout_after(r.next_stage, g.members.size())));
  t.issued_us = now_us;
  t.request = x.request;

  if (needs_move(t.input, g.members)) {
    msg::reshard rs;
    rs.request_id = rid;
    rs.task_id = t.task_id;
    rs.from = t.input;
    rs.to_members = g.members;
    rs.to_layout = std::string(to_string(layout_before(r.next_stage, g.members.size())));
    rs.bytes = cost_model::state_bytes(*r.profile, r.tokens);
    rs.est_us = r.reshard_us;
    ++stats_.reshards;
    stats_.reshard_est_us += rs.est_us;
    ++r.regroupings;
    out.push_back(std::move(rs));
  }
  x.task_id = t.task_id;
  x.task_stage = r.next_stage;
  x.task_step_end = t.step_end;
  r.running = true;
  r.group_id = g.id;
  set_waiting(r, false);
  g.busy = true;
  g.request_id = rid;
  group_task_[g.id] = t.task_id;
  for (auto w : g.members) workers_.at(w).busy = true;
  ++stats_.tasks_dispatched;
  out.push_back(std::move(t));
}

void scheduler_core::finish(std::uint64_t rid, const char* status, std::string error, std::int64_t now_us, out_t& out) {
  const request_view& r = views_.at(rid);
  const request_extra& x = extra_.at(rid);
  msg::request_done d;
  d.request_id = rid;
  d.client_tag = x.client_tag;
  d.class_name = r.class_name;
  d.status = status;
  d.error = std::move(error);
  d.arrival_us = r.arrival_us;
  d.finish_us = now_us;
  d.has_deadline = r.has_deadline;
  d.deadline_us = r.deadline_us;
  d.latency_us = std::max<std::int64_t>(0, now_us - r.arrival_us);
  d.run_us = x.run_us;
  d.reshard_us = x.reshard_us;
  d.gpu_us = x.gpu_us;
  d.queue_us = std::max<std::int64_t>(0, d.latency_us - d.run_us - d.reshard_us);
  d.slo_met = d.status == "done" && (!r.has_deadline || now_us <= r.deadline_us);
  d.regroupings = r.regroupings;
  d.preemptions = x.preemptions;
  d.retries = x.retries;
  d.result_hash = x.result_hash;
  if (d.status == "done" && !r.holders.empty())
    d.result_ref = "worker:" + std::to_string(r.holders.front()) + "/request:" + std::to_string(rid);
  out.push_back(std::move(d));
  set_waiting(r, false);
  views_.erase(rid);
  extra_.erase(rid);
}

std::string scheduler_core::check_invariants() const {
  std::map<std::int32_t, int> in_groups;
  for (const auto& [gid, g] : groups_) {
    if (group_id_of(g.members) != gid) return "group id is not the hash of its members";
    for (auto w : g.members) {
      if (++in_groups[w] > 1) return "worker " + std::to_string(w) + " is in two groups";
      auto wi = workers_.find(w);
      if (wi == workers_.end() || wi->second.group_id != gid)
        return "worker " + std::to_string(w) + " does not know its group";
      if (wi->second.busy != g.busy) return "worker " + std::to_string(w) + " busy flag differs from its group";
    }
    if (g.busy) {
      auto r = views_.find(g.request_id);
      if (r != views_.end() && !r->second.running) return "busy group runs a waiting request";
    }
  }
  for (const auto& [id, w] : workers_) {
    if (w.group_id != 0 && !groups_.count(w.group_id)) return "worker in a missing group";
    if (w.busy && w.group_id == 0) return "busy worker outside any group";
  }
  for (const auto& [id, r] : views_)
    if (r.running == (waiting_.count(id) != 0)) return "request both running and waiting, or neither";
  if (waiting_by_deadline_.size() + waiting_late_.size() != waiting_.size()) return "deadline index out of step";
  return {};
}

}  // namespace gfdit
