#include "actors/recorder/recorder_tap.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "actors/runtime/node.hpp"

namespace gfdit {
namespace {

struct hub {
  std::shared_mutex mu;
  std::vector<tap_sink*> sinks;
  std::atomic<int> count{0};  // fast path: no recorder, no lock
  std::atomic<int> handled_count{0};  // sinks that want on_handled
  std::atomic<bool> installed{false};
};

hub& the_hub() {
  static hub h;
  return h;
}

// The envelope this thread is routing right now: its local deliveries follow on this thread.
thread_local const envelope* routing = nullptr;
// The last inbound envelope this thread delivered (the bus thread delivers one inbound
// envelope to each local subscriber in a row).
struct seen {
  const envelope* p = nullptr;
  std::uint64_t seq = 0, correlation = 0;
  std::int64_t wall = 0;
  std::uint32_t type = 0;
  bool same(const envelope& e) const {
    return p == &e && seq == e.seq && wall == e.time.wall_ns && type == e.type_id &&
           correlation == e.correlation;
  }
};
thread_local seen last_inbound;

void feed(const envelope_ptr& env) {
  auto& h = the_hub();
  std::shared_lock lock(h.mu);
  for (auto* s : h.sinks) s->on_envelope(env);
}

void on_tap(const envelope_ptr& ptr, tap_point p) {
  if (the_hub().count.load(std::memory_order_relaxed) == 0) return;
  const envelope& env = *ptr;
  if (p == tap_point::sent) {
    routing = &env;
    return feed(ptr);
  }
  if (&env == routing) return;  // a local delivery of what this thread just routed
  if (last_inbound.same(env)) return;
  last_inbound = {&env, env.seq, env.correlation, env.time.wall_ns, env.type_id};
  feed(ptr);
}

void on_handled(const envelope_ptr& env, const std::string& actor) {
  auto& h = the_hub();
  if (h.handled_count.load(std::memory_order_relaxed) == 0) return;
  std::shared_lock lock(h.mu);
  for (auto* s : h.sinks)
    if (s->wants_handled()) s->on_handled(env, actor);
}

}  // namespace

void install_recorder_tap(node& n) {
  n.set_tap(on_tap);
  n.set_handled_tap(on_handled);
  the_hub().installed = true;
}

bool recorder_tap_installed() { return the_hub().installed.load(); }

void attach_tap_sink(tap_sink* s) {
  auto& h = the_hub();
  std::unique_lock lock(h.mu);
  if (std::find(h.sinks.begin(), h.sinks.end(), s) == h.sinks.end()) h.sinks.push_back(s);
  h.count = static_cast<int>(h.sinks.size());
  h.handled_count = static_cast<int>(std::count_if(h.sinks.begin(), h.sinks.end(), [](tap_sink* x) { return x->wants_handled(); }));
}

void detach_tap_sink(tap_sink* s) {
  auto& h = the_hub();
  std::unique_lock lock(h.mu);
  h.sinks.erase(std::remove(h.sinks.begin(), h.sinks.end(), s), h.sinks.end());
  h.count = static_cast<int>(h.sinks.size());
  h.handled_count = static_cast<int>(std::count_if(h.sinks.begin(), h.sinks.end(), [](tap_sink* x) { return x->wants_handled(); }));
}

}  // namespace gfdit
