#include "actors/recorder/recorder_tap.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "actors/runtime/node.hpp"

namespace gfdit {
namespace {

// The sink list is read on every tapped message, by every sending, bus and handling thread, and
// changed only when a recorder attaches or detaches. So readers take no lock and write no shared
// cache line: they read an immutable snapshot published through an atomic pointer, and announce
// themselves on a counter of their own (one cache line per thread).
//
// Why detach is safe: detach_tap_sink must return only once no thread can still call the sink
// (the recorder is destroyed after it). A reader stores its counter odd (seq_cst), then loads
// the snapshot (seq_cst), calls the sinks, and stores the counter even again (release). A writer
// stores the new snapshot (seq_cst), then reads every counter (seq_cst) and waits for each odd
// one to change. In the single total order of seq_cst operations, either the reader's odd store
// comes before the writer reads its counter (the writer waits for the section to end), or the
// writer's snapshot store comes before the reader's load (the reader sees the new list). The
// even store is a release and the writer's read an acquire, so the sink calls of the section
// happen before detach returns. Old snapshots are kept until exit (a few pointers per attach or
// detach), so a reader never sees freed memory. Nested sections (a sink that routes) count once.
// The order of the sink calls is that of the envelopes' routing, as before: a message routed
// after another (on one thread, or causally) sees the same or a newer snapshot.
struct snapshot {
  std::vector<tap_sink*> sinks;    // every attached sink
  std::vector<tap_sink*> handled;  // those that want on_handled
};

struct alignas(64) reader_slot {
  std::atomic<std::uint64_t> seq{0};  // odd while its thread is inside a read section
  std::atomic<bool> in_use{false};    // owned by a live thread (taken under hub::mu)
};

struct hub {
  std::atomic<const snapshot*> current{nullptr};  // nullptr: no sink (the fast path)
  std::atomic<bool> any_handled{false};            // fast path of the dispatch hook
  std::atomic<bool> installed{false};
  std::mutex mu;  // attach/detach and the slot list
  std::vector<std::unique_ptr<const snapshot>> published;  // mu: every snapshot ever, kept to exit
  std::deque<reader_slot> slots;                           // mu: grows only (stable addresses)
};

hub& the_hub() {
  // Never destroyed: a thread that outlives the statics (its slot given back at its exit) must
  // still find it.
  static union holder {
    hub h;
    holder() : h() {}
    ~holder() {}
  } storage;
  return storage.h;
}

// This thread's slot: taken at its first read section, given back (for another thread) at exit.
struct slot_owner {
  reader_slot* slot = nullptr;
  ~slot_owner() {
    if (slot) slot->in_use.store(false, std::memory_order_release);  // its seq is even
  }
};
thread_local slot_owner my_slot;
thread_local int read_depth = 0;

reader_slot& take_slot() {
  auto& h = the_hub();
  std::lock_guard lock(h.mu);
  for (auto& s : h.slots)
    if (!s.in_use.exchange(true, std::memory_order_acquire)) return s;
  auto& s = h.slots.emplace_back();
  s.in_use.store(true, std::memory_order_relaxed);
  return s;
}

// Calls f(snapshot) inside a read section; f is not called when no sink is attached.
template <class F>
void read_sinks(F&& f) {
  auto& h = the_hub();
  if (read_depth > 0) {  // nested: the outer section already holds the writers off
    if (const snapshot* s = h.current.load(std::memory_order_acquire)) f(*s);
    return;
  }
  if (!my_slot.slot) my_slot.slot = &take_slot();
  std::atomic<std::uint64_t>& seq = my_slot.slot->seq;
  const std::uint64_t v = seq.load(std::memory_order_relaxed);  // only this thread writes it
  seq.store(v + 1, std::memory_order_seq_cst);
  ++read_depth;
  if (const snapshot* s = h.current.load(std::memory_order_seq_cst)) f(*s);
  --read_depth;
  seq.store(v + 2, std::memory_order_release);
}

// Publishes the list `sinks` (h.mu held) and waits until no read section can still use an older
// one. A section of the calling thread itself (a sink detaching from its own callback) is not
// waited for.
void publish(hub& h, std::vector<tap_sink*> sinks) {
  auto s = std::make_unique<snapshot>();
  for (auto* x : sinks)
    if (x->wants_handled()) s->handled.push_back(x);
  s->sinks = std::move(sinks);
  const bool any_handled = !s->handled.empty();
  const snapshot* next = s->sinks.empty() ? nullptr : s.get();
  h.published.push_back(std::move(s));
  h.current.store(next, std::memory_order_seq_cst);
  h.any_handled.store(any_handled, std::memory_order_relaxed);
  for (auto& slot : h.slots) {
    if (&slot == my_slot.slot) continue;
    const std::uint64_t v = slot.seq.load(std::memory_order_seq_cst);
    if (v % 2 == 0) continue;
    while (slot.seq.load(std::memory_order_acquire) == v) std::this_thread::yield();
  }
}

std::vector<tap_sink*> current_sinks(const hub& h) {
  const snapshot* s = h.current.load(std::memory_order_relaxed);  // h.mu held: the latest
  return s ? s->sinks : std::vector<tap_sink*>{};
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
  read_sinks([&](const snapshot& s) {
    for (auto* x : s.sinks) x->on_envelope(env);
  });
}

void on_tap(const envelope_ptr& ptr, tap_point p) {
  if (the_hub().current.load(std::memory_order_relaxed) == nullptr) return;
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
  if (!the_hub().any_handled.load(std::memory_order_relaxed)) return;
  read_sinks([&](const snapshot& s) {
    for (auto* x : s.handled) x->on_handled(env, actor);
  });
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
  std::lock_guard lock(h.mu);
  auto sinks = current_sinks(h);
  if (std::find(sinks.begin(), sinks.end(), s) != sinks.end()) return;
  sinks.push_back(s);
  publish(h, std::move(sinks));
}

void detach_tap_sink(tap_sink* s) {
  auto& h = the_hub();
  std::lock_guard lock(h.mu);
  auto sinks = current_sinks(h);
  const auto it = std::find(sinks.begin(), sinks.end(), s);
  if (it == sinks.end()) return;
  sinks.erase(it);
  publish(h, std::move(sinks));
}

}  // namespace gfdit
