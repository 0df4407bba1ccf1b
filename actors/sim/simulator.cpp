#include "actors/sim/simulator.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "actors/admission/admission_driver.hpp"
#include "actors/membership/membership_driver.hpp"
#include "actors/runtime/inbound.hpp"
#include "actors/runtime/outgoing.hpp"
#include "actors/scheduler/scheduler_driver.hpp"
#include "actors/serving/serving_names.hpp"
#include "actors/worker/sim_backend.hpp"
#include "messages/system.hpp"

namespace gfdit::sim {

namespace {

namespace names = serving_names;

enum class actor : std::uint8_t { client, admission, scheduler, membership, worker };

struct address {
  actor who = actor::client;
  std::int32_t index = 0;  // the worker's id
};

enum class ev : std::uint8_t {
  deliver,  // a message reaches an actor
  arrival,  // the client sends request i
  client_cancel,
  worker_end,  // a worker's task ends (if its token is still current)
  heartbeats,  // every live worker beats; membership checks liveness
  death,
  recovery,
};

struct event {
  std::int64_t t;
  std::uint64_t seq;  // ties broken by creation order: determinism
  ev kind;
  actor to = actor::client;
  std::int32_t index = 0;   // worker, arrival index
  std::uint64_t token = 0;  // worker_end: the task token; deliver: message slot
  bool operator>(const event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct worker_sim {
  sim_backend backend;
  bool alive = true;
  std::uint64_t token = 0;  // increments when a task starts or is dropped
  bool running = false;
  std::int64_t started_us = 0;
  std::vector<std::int32_t> members;
  std::optional<msg::task_done> report;
};

constexpr const char* client_name = "client";

// A message on its way: who sent it, and what the sender's driver (or the simulated client or
// worker) emitted, typed: never encoded.
struct parcel {
  address from;
  outgoing out;
};

// The simulator runs the production drivers (the very routing tables the actor shells host), on
// the simulator's clock: their now is the stamp, and a message is stamped when it arrives.
admission_driver_config admission_cfg(std::int64_t queue_bound, bool feasibility, std::int32_t gpus) {
  admission_driver_config c;
  c.core = admission_config{static_cast<std::size_t>(queue_bound), feasibility, gpus};
  return c;
}

class simulation {
 public:
  simulation(const workload& w, const sim_options& o, const std::shared_ptr<const cost_model>& costs,
             std::vector<arrival> trace, std::unique_ptr<scheduler_driver> scheduler, bool feasibility)
      : w_(w),
        o_(o),
        trace_(std::move(trace)),
        admission_(costs, admission_cfg(queue_bound(), feasibility, o.gpus)),
        scheduler_(std::move(scheduler)),
        membership_(membership_driver_config{membership_config{o.heartbeat_timeout_us}}),
        fault_rng_(splitmix64((o.seed ? o.seed : w.seed) ^ 0xfa17ull)) {
    for (std::int32_t i = 0; i < o.gpus; ++i)
      workers_.push_back(worker_sim{sim_backend(i, *costs, sim_backend_config{o.collective_timeout_us})});
    // Who is who, and who listens to what: the client listens for the ends of its requests (the
    // sim workers need no topic), the drivers to the topics they name. The order of the
    // subscribers is the order of delivery.
    names_[client_name] = {actor::client, 0};
    names_[names::admission] = {actor::admission, 0};
    names_[names::scheduler] = {actor::scheduler, 0};
    names_[names::membership] = {actor::membership, 0};
    for (std::int32_t i = 0; i < o.gpus; ++i) worker_names_.push_back(names::worker(i));
    subscribers_[names::done_topic].push_back({actor::client, 0});
    for (const auto& t : membership_.topics()) subscribers_[t].push_back({actor::membership, 0});
    for (const auto& t : admission_.topics()) subscribers_[t].push_back({actor::admission, 0});
    for (const auto& t : scheduler_->topics()) subscribers_[t].push_back({actor::scheduler, 0});
  }

  run_metrics run();

 private:
  std::int64_t queue_bound() const {
    const std::int64_t q = o_.admission_queue > 0 ? o_.admission_queue : w_.admission_queue;
    return q > 0 ? q : 32 * std::max(1, o_.gpus);
  }
  void push(std::int64_t t, ev kind, actor to = actor::client, std::int32_t index = 0, std::uint64_t token = 0) {
    heap_.push_back(event{t, seq_++, kind, to, index, token});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
  }
  // Messages keep their order per (sender, receiver) link, as on a socket.
  void post(address to, parcel m) {
    const address from = m.from;
    std::int64_t delay = o_.net_delay_us;
    if (o_.fault.delay_prob > 0 && fault_rng_.uniform() < o_.fault.delay_prob)
      delay += static_cast<std::int64_t>(fault_rng_.uniform() * o_.fault.delay_max_ms * 1000.0);
    const std::uint64_t link = (std::uint64_t{id_of(from)} << 32) | id_of(to);
    auto& last = link_last_[link];
    const std::int64_t at = std::max(now_ + delay, last);
    last = at;
    std::uint64_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
      slots_[slot] = std::move(m);
    } else {
      slot = slots_.size();
      slots_.push_back(std::move(m));
    }
    push(at, ev::deliver, to.who, to.index, slot);
  }
  // As the bus does: a directed message to the actor of that name, a topic message to every
  // subscriber; nobody there, nothing delivered.
  void send(address from, outgoing o) {
    if (o.kind == route::topic) {
      auto it = subscribers_.find(o.destination);
      if (it == subscribers_.end()) return;
      for (std::size_t i = 0; i < it->second.size(); ++i)
        post(it->second[i], parcel{from, i + 1 < it->second.size() ? o : std::move(o)});
    } else if (const auto w = names::worker_id(o.destination); w >= 0) {
      if (w < o_.gpus) post({actor::worker, w}, parcel{from, std::move(o)});
    } else if (auto it = names_.find(o.destination); it != names_.end()) {
      post(it->second, parcel{from, std::move(o)});
    }
  }
  void send(address from, std::vector<outgoing> out) {
    for (auto& o : out) send(from, std::move(o));
  }
  static std::uint32_t id_of(address a) { return (std::uint32_t(a.who) << 24) | std::uint32_t(a.index); }
  const std::string& name_of(address a) const {
    static const std::string fixed[] = {client_name, names::admission, names::scheduler, names::membership};
    return a.who == actor::worker ? worker_names_[a.index] : fixed[static_cast<int>(a.who)];
  }
  // What a driver is fed: the message as sent, stamped now (its arrival).
  inbound arriving(const parcel& m) const {
    return inbound(m.out.kind, name_of(m.from), m.out.destination, now_ * 1000, m.out.message);
  }

  void deliver(actor to, std::int32_t index, const parcel& m);
  void to_membership(const inbound& m) { send({actor::membership, 0}, membership_.feed(m)); }
  void start_task(std::int32_t w, const msg::task_assign& t);
  void stop_task(std::int32_t w);
  void kill(std::int32_t w);
  void revive(std::int32_t w);
  bool all_deaths_known() const {
    for (std::int32_t i = 0; i < o_.gpus; ++i) {
      if (workers_[i].alive) continue;
      auto it = membership_.core().workers().find(i);
      if (it != membership_.core().workers().end() && it->second.alive) return false;
    }
    return true;
  }
  void check() {
    if (o_.check_invariants && violation_.empty()) {
      violation_ = scheduler_->core().check_invariants();
      if (violation_.empty()) {
        std::map<std::int32_t, int> n;
        for (const auto& [gid, g] : membership_.core().groups())
          if (g.active)
            for (auto w : g.members)
              if (++n[w] > 1) violation_ = "membership: worker " + std::to_string(w) + " in two groups";
      }
      if (!violation_.empty()) violation_ = "t=" + std::to_string(now_) + "us: " + violation_;
    }
  }

  const workload& w_;
  const sim_options& o_;
  std::vector<arrival> trace_;
  admission_driver admission_;
  std::unique_ptr<scheduler_driver> scheduler_;
  membership_driver membership_;
  std::vector<worker_sim> workers_;
  rng fault_rng_;
  std::vector<std::string> worker_names_;
  std::map<std::string, address, std::less<>> names_;  // all but the workers (names::worker_id)
  std::map<std::string, std::vector<address>, std::less<>> subscribers_;

  std::vector<event> heap_;
  std::uint64_t seq_ = 0;
  std::int64_t now_ = 0;
  std::vector<parcel> slots_;
  std::vector<std::uint64_t> free_slots_;
  std::map<std::uint64_t, std::int64_t> link_last_;
  std::map<std::uint64_t, std::size_t> arrival_of_;  // request id -> trace index
  std::int64_t terminal_ = 0;
  std::set<std::uint64_t> terminal_ids_;
  std::int64_t deaths_ = 0;
  std::uint64_t heartbeat_seq_ = 0;
  std::uint64_t ticks_ = 0;
  metrics_recorder rec_;
  std::string violation_;
};

void simulation::stop_task(std::int32_t w) {
  auto& ws = workers_[w];
  if (ws.running) rec_.busy((now_ - ws.started_us) / 1e6);
  ws.running = false;
  ws.report.reset();
  ++ws.token;
}

void simulation::start_task(std::int32_t w, const msg::task_assign& t) {
  auto& ws = workers_[w];
  stop_task(w);  // the scheduler's latest assignment supersedes anything still running
  bool peers = true;
  for (auto m : t.members)
    if (m < 0 || m >= o_.gpus || !workers_[m].alive) peers = false;
  auto r = ws.backend.start(t, now_, peers);
  ws.running = true;
  ws.started_us = now_;
  ws.members = t.members;
  ws.report = std::move(r.report);
  push(r.end_us, ev::worker_end, actor::worker, w, ws.token);
}

void simulation::kill(std::int32_t w) {
  auto& ws = workers_[w];
  if (!ws.alive) return;
  stop_task(w);
  ws.alive = false;
  ++deaths_;
  // The group's first member notices at its next collective and reports the failure.
  for (std::int32_t v = 0; v < o_.gpus; ++v) {
    auto& vs = workers_[v];
    if (v == w || !vs.alive || !vs.running || !vs.report) continue;
    if (std::find(vs.members.begin(), vs.members.end(), w) == vs.members.end()) continue;
    auto rep = std::move(*vs.report);
    const std::int64_t started = vs.started_us;
    stop_task(v);
    vs.running = true;
    vs.started_us = started;
    rep.ok = false;
    rep.error = "worker " + std::to_string(w) + " died (collective timed out)";
    rep.end_us = now_ + o_.collective_timeout_us;
    vs.report = std::move(rep);
    push(now_ + o_.collective_timeout_us, ev::worker_end, actor::worker, v, vs.token);
  }
}

void simulation::revive(std::int32_t w) {
  auto& ws = workers_[w];
  if (ws.alive) return;
  ws.alive = true;
  send({actor::worker, w}, make_outgoing(route::topic, names::workers_topic,
                                         msg::worker_hello{w, "sim", "sim:" + std::to_string(w), "sim"}));
}

void simulation::deliver(actor to, std::int32_t index, const parcel& m) {
  const any_message& body = m.out.message;
  switch (to) {
    case actor::client:
      if (const auto* a = body.get<msg::admitted>()) {
        const std::size_t i = std::stoull(a->request.client_tag);
        arrival_of_[a->request_id] = i;
        if (trace_[i].cancel) {
          const auto after = static_cast<std::int64_t>(trace_[i].cancel_after_fraction * a->est_single_gpu_us);
          push(now_ + after, ev::client_cancel, actor::client, static_cast<std::int32_t>(i), a->request_id);
        }
      } else if (const auto* r = body.get<msg::rejected>()) {
        rec_.rejected(trace_[std::stoull(r->client_tag)].request.class_name, now_);
        rec_.last_event(now_);
        ++terminal_;
      } else if (const auto* d = body.get<msg::request_done>()) {
        if (!terminal_ids_.insert(d->request_id).second && violation_.empty())
          violation_ = "request " + std::to_string(d->request_id) + " ended twice";
        rec_.terminal(*d);
        ++terminal_;
      }
      break;
    case actor::admission:
      send({actor::admission, 0}, admission_.feed(arriving(m)));
      break;
    case actor::scheduler:
      send({actor::scheduler, 0}, scheduler_->feed(arriving(m)));
      check();
      break;
    case actor::membership:
      send({actor::membership, 0}, membership_.feed(arriving(m)));
      break;
    case actor::worker:
      if (!workers_[index].alive) break;  // a dead worker hears nothing
      // A sim worker runs its tasks and ignores the rest (a Reshard: the sim backend charges the
      // move from the task's input artifact, as the live sim worker does).
      if (const auto* t = body.get<msg::task_assign>()) start_task(index, *t);
      break;
  }
}

run_metrics simulation::run() {
  // Start: every worker says hello; heartbeats begin; faults are scheduled.
  for (std::int32_t i = 0; i < o_.gpus; ++i) {
    workers_[i].alive = false;
    revive(i);
  }
  push(o_.heartbeat_us, ev::heartbeats);
  const std::int64_t window = trace_.empty() ? 0 : trace_.back().at_us;
  for (std::size_t i = 0; i < trace_.size(); ++i)
    push(trace_[i].at_us, ev::arrival, actor::client, static_cast<std::int32_t>(i));
  for (const auto& d : o_.fault.deaths) {
    if (d.worker >= o_.gpus) continue;
    const auto at = static_cast<std::int64_t>(d.at_s * 1e6);
    push(at, ev::death, actor::worker, d.worker);
    if (d.recover_after_s > 0)
      push(at + static_cast<std::int64_t>(d.recover_after_s * 1e6), ev::recovery, actor::worker, d.worker);
  }
  {
    std::vector<std::int32_t> pool(o_.gpus);
    for (std::int32_t i = 0; i < o_.gpus; ++i) pool[i] = i;
    for (std::int32_t k = 0; k < std::min(o_.fault.random_deaths, o_.gpus); ++k) {
      const auto j = k + static_cast<std::int32_t>(fault_rng_.below(pool.size() - k));
      std::swap(pool[k], pool[j]);
      const auto at = static_cast<std::int64_t>(fault_rng_.uniform() * std::max<std::int64_t>(window, 1));
      push(at, ev::death, actor::worker, pool[k]);
      if (o_.fault.random_recover_after_s > 0)
        push(at + static_cast<std::int64_t>(o_.fault.random_recover_after_s * 1e6), ev::recovery, actor::worker,
             pool[k]);
    }
  }
  const std::int64_t limit = o_.max_virtual_s > 0 ? static_cast<std::int64_t>(o_.max_virtual_s * 1e6)
                                                  : std::max<std::int64_t>(window * 100, 86'400'000'000ll);
  std::size_t arrived = 0;
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
    const event e = heap_.back();
    heap_.pop_back();
    now_ = e.t;
    if (now_ > limit) break;
    switch (e.kind) {
      case ev::deliver: {
        const parcel m = std::move(slots_[e.token]);
        free_slots_.push_back(e.token);
        deliver(e.to, e.index, m);
        break;
      }
      case ev::arrival: {
        ++arrived;
        const auto& a = trace_[e.index];
        rec_.arrived(a.request.class_name, now_);
        send({actor::client, 0}, make_outgoing(route::direct, names::admission, a.request));
        break;
      }
      case ev::client_cancel:
        send({actor::client, 0}, make_outgoing(route::direct, names::scheduler, msg::cancel{e.token, "client"}));
        break;
      case ev::worker_end: {
        auto& ws = workers_[e.index];
        if (!ws.alive || !ws.running || ws.token != e.token) break;
        auto rep = std::move(ws.report);
        stop_task(e.index);
        if (rep) send({actor::worker, e.index}, make_outgoing(route::direct, names::scheduler, std::move(*rep)));
        break;
      }
      case ev::heartbeats: {
        // Heartbeats are delivered at the beat itself, and to membership alone (the scheduler
        // ignores them): liveness only compares their times.
        for (std::int32_t i = 0; i < o_.gpus; ++i)
          if (workers_[i].alive)
            to_membership(inbound(route::topic, worker_names_[i], names::workers_topic, now_ * 1000,
                                  msg::worker_heartbeat{i, heartbeat_seq_}));
        ++heartbeat_seq_;
        to_membership(arriving(parcel{{actor::membership, 0}, membership_.tick(++ticks_)}));
        break;
      }
      case ev::death:
        kill(e.index);
        break;
      case ev::recovery:
        revive(e.index);
        break;
    }
    if (arrived == trace_.size() && terminal_ == static_cast<std::int64_t>(trace_.size())) break;
    if (e.kind == ev::heartbeats) {
      // Nothing but heartbeats left, and every death already declared: nothing can change any
      // more (say, static groups waiting for a member that never comes back). Stop; what is
      // left is reported as unfinished.
      if (heap_.empty() && arrived == trace_.size() && all_deaths_known()) break;
      push(now_ + o_.heartbeat_us, ev::heartbeats);
    }
  }
  // Busy time of tasks still running when the run stops.
  for (std::int32_t i = 0; i < o_.gpus; ++i) stop_task(i);

  run_metrics base;
  base.workload = w_.name;
  base.policy = o_.policy;
  base.seed = o_.seed ? o_.seed : w_.seed;
  const auto& st = scheduler_->core().stats();
  base.groups_formed = static_cast<std::int64_t>(st.groups_formed);
  base.tasks_failed = static_cast<std::int64_t>(st.tasks_failed);
  base.policy_calls = static_cast<std::int64_t>(st.policy_calls);
  base.invalid_decisions = static_cast<std::int64_t>(st.decisions_invalid);
  base.worker_deaths = deaths_;
  base.admitted = static_cast<std::int64_t>(admission_.core().admitted_count());
  base.invariant_violation = violation_;
  return rec_.finish(base, o_.gpus);
}

}  // namespace

result<run_metrics> simulate(const workload& w0, const sim_options& o, const cost_model& costs) {
  if (o.gpus < 1 || o.gpus > 4096) return make_error(errc::invalid_argument, "--gpus must be in [1, 4096]");
  workload w = w0;
  if (o.requests > 0) w.requests = o.requests;
  if (o.load > 0 && w.arrivals.process != "phases") {
    w.arrivals.load = o.load;
    w.arrivals.rate_per_s = 0;
  }
  // The caller's cost model outlives the run: shared without owning it.
  const std::shared_ptr<const cost_model> shared(std::shared_ptr<void>(), &costs);
  scheduler_driver_config cfg;
  cfg.policy = o.policy;
  cfg.core.chunk_steps = o.chunk_steps > 0 ? o.chunk_steps : w.chunk_steps;
  cfg.gpus = o.gpus;
  auto scheduler = scheduler_driver::create(shared, cfg);
  if (!scheduler) return scheduler.err();
  const bool feasibility = admission_config{}.reject_infeasible;  // as a live admission actor by default
  const std::uint64_t seed = o.seed ? o.seed : w.seed;
  auto trace = generate_arrivals(w, costs, o.gpus, seed, o.load_scale);
  if (!trace) return trace.err();
  double rate = 0;
  if (trace->size() > 1) rate = (trace->size() - 1) / (trace->back().at_us / 1e6 - trace->front().at_us / 1e6);
  simulation s(w, o, shared, std::move(*trace), std::move(*scheduler), feasibility);
  auto m = s.run();
  m.offered_rate_rps = rate;
  const double mw = mean_work_s(w, costs);
  m.offered_load = mw > 0 ? rate * mw / o.gpus : 0;
  return m;
}

}  // namespace gfdit::sim
