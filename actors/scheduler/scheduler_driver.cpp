#include "actors/scheduler/scheduler_driver.hpp"

#include <algorithm>

#include "actors/runtime/prometheus.hpp"
#include "actors/serving/model_time.hpp"
#include "actors/serving/serving_names.hpp"
#include "messages/codec.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

// To each worker once, in the order of their ids.
template <message T>
void to_workers(std::vector<outgoing>& out, std::vector<std::int32_t> workers, T&& m) {
  if (workers.empty()) return;
  std::sort(workers.begin(), workers.end());
  workers.erase(std::unique(workers.begin(), workers.end()), workers.end());
  const any_message one(std::move(m));  // one message (encoded once) for the whole group
  for (auto w : workers) out.push_back({route::direct, names::worker(w), one});
}

}  // namespace

scheduler_driver::scheduler_driver(std::shared_ptr<const cost_model> costs, std::unique_ptr<scheduler_core> core,
                                   scheduler_driver_config cfg)
    : costs_(std::move(costs)), core_(std::move(core)), cfg_(std::move(cfg)) {}

result<std::unique_ptr<scheduler_driver>> scheduler_driver::create(std::shared_ptr<const cost_model> costs,
                                                                   scheduler_driver_config cfg) {
  auto pol = make_policy(cfg.policy);
  if (!pol) return pol.err();
  // Refused here, before anything runs: such a graph used to take requests and hang forever.
  if (const auto need = (*pol)->min_group_size(); cfg.gpus > 0 && need > cfg.gpus)
    return make_error(errc::invalid_argument,
                      "policy '" + cfg.policy + "' runs every request on a group of " + std::to_string(need) +
                          " workers, but the graph has " + std::to_string(cfg.gpus) +
                          ": no request could ever run (use a smaller degree, e.g. static:" + std::to_string(cfg.gpus) +
                          ", or more workers)");
  auto core = std::make_unique<scheduler_core>(*costs, std::move(*pol), cfg.core);
  return std::unique_ptr<scheduler_driver>(new scheduler_driver(std::move(costs), std::move(core), std::move(cfg)));
}

outgoing scheduler_driver::tick(std::uint64_t n) const {
  return make_outgoing(route::direct, cfg_.self, msg::heartbeat{cfg_.self, n});
}

std::vector<std::string> scheduler_driver::topics() const { return {names::workers_topic, names::membership_topic}; }

std::vector<outgoing> scheduler_driver::feed(const inbound& in) {
  const auto now = model_now_us(in.wall_ns, cfg_.speedup);
  auto run = [&]<message T>(
                 std::vector<scheduler_output> (scheduler_core::*fn)(const T&, std::int64_t)) -> std::vector<outgoing> {
    const T* m = in.get<T>();
    if (!m) return {};
    return emit((core_.get()->*fn)(*m, now));
  };
  const bool direct = in.kind == route::direct;
  const bool topic = in.kind == route::topic;
  if (direct && in.is<msg::admitted>()) return run(&scheduler_core::on_admitted);
  if (direct && in.is<msg::task_done>()) return run(&scheduler_core::on_task_done);
  if (direct && in.is<msg::cancel>()) return run(&scheduler_core::on_cancel);
  if (topic && in.destination == names::workers_topic && in.is<msg::worker_hello>())
    return run(&scheduler_core::on_worker_hello);
  // The answer to our hello_query: only news when the worker is not known alive (a restarted
  // scheduler learning who is there), never a sign that a known worker restarted.
  if (direct && in.is<msg::worker_hello>()) {
    const auto* h = in.get<msg::worker_hello>();
    if (!h || known_alive(h->worker)) return {};
    return emit(core_->on_worker_hello(*h, now));
  }
  if (topic && in.destination == names::workers_topic && in.is<msg::worker_heartbeat>()) return ask_unknown(in);
  if (topic && in.destination == names::membership_topic && in.is<msg::worker_down>())
    return run(&scheduler_core::on_worker_down);
  if (topic && in.destination == names::membership_topic && in.is<msg::group_view>())
    return run(&scheduler_core::on_group_view);
  if (direct && in.is<msg::heartbeat>() && in.sender == cfg_.self) {
    auto out = emit(core_->on_tick(now));
    if (const auto* beat = in.get<msg::heartbeat>(); beat && beat->count % 5 == 0)
      out.push_back(make_outgoing(route::topic, names::state_topic, snapshot(now)));
    return out;
  }
  return {};
}

bool scheduler_driver::known_alive(std::int32_t worker) const {
  auto w = core_->workers().find(worker);
  return w != core_->workers().end() && w->second.alive;
}

// A worker beats but never said hello to this scheduler (it started after the worker did): ask
// it, at most once a second. A worker this scheduler saw die must say hello again by itself.
std::vector<outgoing> scheduler_driver::ask_unknown(const inbound& in) {
  const auto* b = in.get<msg::worker_heartbeat>();
  if (!b || core_->workers().count(b->worker)) return {};
  const std::int64_t wall_us = model_now_us(in.wall_ns, 1.0);
  auto [asked, first] = asked_.try_emplace(b->worker, wall_us);
  if (!first && wall_us - asked->second < 1'000'000) return {};
  asked->second = wall_us;
  return {make_outgoing(route::direct, names::worker(b->worker), msg::hello_query{b->worker})};
}

msg::cluster_state scheduler_driver::snapshot(std::int64_t now_us) const {
  const scheduler_core& c = *core_;
  msg::cluster_state s;
  s.at_us = now_us;
  s.groups = static_cast<std::int32_t>(c.groups().size());
  s.tasks_dispatched = c.stats().tasks_dispatched;
  s.reshards = c.stats().reshards;
  for (const auto& [id, w] : c.workers()) s.workers.push_back({id, w.alive, w.busy, w.group_id});
  std::vector<const request_view*> live;
  for (const auto& [id, r] : c.requests()) {
    (r.running ? s.running : s.waiting) += 1;
    live.push_back(&r);
  }
  std::stable_partition(live.begin(), live.end(), [](const request_view* r) { return r->running; });
  if (live.size() > msg::cluster_state::max_requests) live.resize(msg::cluster_state::max_requests);
  for (const request_view* r : live) {
    auto g = c.groups().find(r->group_id);
    const auto size = r->running && g != c.groups().end() ? g->second.members.size() : r->holders.size();
    s.requests.push_back({r->id, r->model, r->class_name, std::string(to_string(r->next_stage)), r->steps_done,
                          r->steps_total, r->running, static_cast<std::int32_t>(size), r->regroupings});
  }
  return s;
}

std::string scheduler_driver::metrics_text(const std::string& actor) const {
  const scheduler_core& c = *core_;
  const msg::cluster_state now = snapshot(0);  // the counts `gfdit top` shows
  std::int64_t alive = 0, busy = 0;
  for (const auto& w : now.workers) {
    alive += w.alive ? 1 : 0;
    busy += w.alive && w.busy ? 1 : 0;
  }
  const prom::labels me = {{"actor", actor}};
  std::string out;
  prom::family(out, "gfdit_scheduler_requests", "gauge", "Live requests, waiting for a group or running a task.");
  prom::sample(out, "gfdit_scheduler_requests", {{"actor", actor}, {"state", "waiting"}}, now.waiting);
  prom::sample(out, "gfdit_scheduler_requests", {{"actor", actor}, {"state", "running"}}, now.running);
  prom::family(out, "gfdit_scheduler_workers", "gauge", "Workers alive, and those of them running a task.");
  prom::sample(out, "gfdit_scheduler_workers", {{"actor", actor}, {"state", "alive"}}, static_cast<double>(alive));
  prom::sample(out, "gfdit_scheduler_workers", {{"actor", actor}, {"state", "busy"}}, static_cast<double>(busy));
  prom::family(out, "gfdit_scheduler_groups", "gauge", "Groups formed and not dissolved.");
  prom::sample(out, "gfdit_scheduler_groups", me, now.groups);
  for (const auto& [what, n] : c.stats().named()) {
    const std::string name = std::string("gfdit_scheduler_") + what + "_total";
    prom::family(out, name, "counter", "The scheduler core's count (scheduler_stats).");
    prom::sample(out, name, me, static_cast<double>(n));
  }
  return out;
}

std::vector<outgoing> scheduler_driver::emit(std::vector<scheduler_output> outs) const {
  std::vector<outgoing> out;
  for (auto& o : outs) {
    std::visit(
        [&](auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, msg::task_assign>) {
            to_workers(out, m.members, std::move(m));
          } else if constexpr (std::is_same_v<T, msg::reshard>) {
            std::vector<std::int32_t> ws = m.from.holders;
            ws.insert(ws.end(), m.to_members.begin(), m.to_members.end());
            to_workers(out, std::move(ws), std::move(m));
          } else if constexpr (std::is_same_v<T, msg::preempt>) {
            out.push_back(make_outgoing(route::topic, names::preempt_topic, std::move(m)));
          } else if constexpr (std::is_same_v<T, msg::request_done>) {
            out.push_back(make_outgoing(route::topic, names::done_topic, std::move(m)));
          } else if constexpr (std::is_same_v<T, progress_note>) {
            out.push_back(make_outgoing(route::direct, std::move(m.to), std::move(m.progress)));
          } else {  // form_group, dissolve_group
            out.push_back(make_outgoing(route::direct, names::membership, std::move(m)));
          }
        },
        o);
  }
  return out;
}

}  // namespace gfdit
