#include "actors/recorder/recorder_tap.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "actors/runtime/node.hpp"
#include "actors/runtime/node_extension.hpp"

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
// A routed envelope's section spans its routing, from `sent` to `routed`: its sinks are chosen
// before any delivery, so a message routed after another (on one thread, or causally) sees the
// same or a newer snapshot.
struct snapshot {
  std::vector<tap_sink*> sinks;    // every attached sink
  std::vector<tap_sink*> handled;  // those that want on_handled
};

struct alignas(64) reader_slot {
  std::atomic<std::uint64_t> seq{0};      // odd while its thread is inside a read section
  std::atomic<std::uint64_t> pending{0};  // the stamp of the envelope its thread routes whose
                                          // sinks were not called yet; 0: none
  std::atomic<bool> in_use{false};        // owned by a live thread (taken under hub::mu)
};

// Slots live in blocks that are only ever appended, so record_stamp_bound() can walk them
// without the hub's mutex (which attach and detach hold while they wait for readers).
struct slot_block {
  reader_slot slots[64];
  std::atomic<slot_block*> next{nullptr};
};

struct hub {
  std::atomic<const snapshot*> current{nullptr};  // nullptr: no sink (the fast path)
  std::atomic<bool> any_handled{false};           // fast path of the dispatch hook
  std::atomic<bool> installed{false};
  std::mutex mu;                                           // attach/detach and appending slot blocks
  std::vector<std::unique_ptr<const snapshot>> published;  // mu: every snapshot ever, kept to exit
  slot_block first;
  slot_block* last = &first;  // mu
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

template <class F>
void for_each_slot(hub& h, F&& f) {
  for (slot_block* b = &h.first; b; b = b->next.load(std::memory_order_acquire))
    for (auto& s : b->slots) f(s);
}

// --- stamps ---

// The time-stamp counter orders events across cores where the kernel keeps time with it (it
// then checked that the cores' counters agree); elsewhere a shared counter does.
bool stamps_from_tsc() {
#if defined(__x86_64__)
  static const bool yes = [] {
    std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    std::string name;
    return f >> name && name == "tsc";
  }();
  return yes;
#else
  return false;
#endif
}

std::atomic<std::uint64_t> stamp_counter{0};

// --- this thread's part ---

// An envelope whose routing this thread started (tap_point::sent) and whose sinks it will
// call at tap_point::routed.
struct routing_frame {
  const envelope* env;
  std::uint64_t stamp;
  const snapshot* sinks;
  const envelope* outer_routing;
};
constexpr int max_frames = 4;  // routes nested deeper (a sink that routes) feed at `sent`

// The last inbound envelope this thread delivered (the bus thread delivers one inbound
// envelope to each local subscriber in a row).
struct seen {
  const envelope* p = nullptr;
  std::uint64_t seq = 0, correlation = 0;
  std::int64_t wall = 0;
  std::uint32_t type = 0;
  bool same(const envelope& e) const {
    return p == &e && seq == e.seq && wall == e.time.wall_ns && type == e.type_id && correlation == e.correlation;
  }
};

// All of it in one constant-initialised block with the initial-exec model: one TLS address
// computation per access, no guard, no __tls_get_addr (this library is loaded with the
// program, not dlopen'ed).
struct thread_state {
  reader_slot* slot = nullptr;
  int read_depth = 0;
  const envelope* routing = nullptr;  // what this thread routes now: its local deliveries follow
  seen last_inbound;
  int frames = 0;
  routing_frame frame[max_frames];
};
[[gnu::tls_model("initial-exec")]] thread_local thread_state me;

// Gives the slot back (for another thread) at thread exit.
struct slot_owner {
  reader_slot* slot = nullptr;
  ~slot_owner() {
    if (slot) slot->in_use.store(false, std::memory_order_release);  // its seq is even
  }
};
thread_local slot_owner owner;

reader_slot& take_slot() {
  auto& h = the_hub();
  std::lock_guard lock(h.mu);
  for (slot_block* b = &h.first; b; b = b->next.load(std::memory_order_relaxed))
    for (auto& s : b->slots)
      if (!s.in_use.exchange(true, std::memory_order_acquire)) return s;
  auto* b = new slot_block;  // kept to exit, like the hub
  b->slots[0].in_use.store(true, std::memory_order_relaxed);
  h.last->next.store(b, std::memory_order_release);
  h.last = b;
  return b->slots[0];
}

// A read section (see the top).
void enter() {
  if (me.read_depth++ > 0) return;
  if (!me.slot) owner.slot = me.slot = &take_slot();
  const std::uint64_t v = me.slot->seq.load(std::memory_order_relaxed);  // only this thread writes it
  me.slot->seq.store(v + 1, std::memory_order_seq_cst);
}

void leave() {
  if (--me.read_depth > 0) return;
  const std::uint64_t v = me.slot->seq.load(std::memory_order_relaxed);
  me.slot->seq.store(v + 1, std::memory_order_release);
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
  for_each_slot(h, [&](reader_slot& slot) {
    if (&slot == me.slot) return;
    const std::uint64_t v = slot.seq.load(std::memory_order_seq_cst);
    if (v % 2 == 0) return;
    while (slot.seq.load(std::memory_order_acquire) == v) std::this_thread::yield();
  });
}

std::vector<tap_sink*> current_sinks(const hub& h) {
  const snapshot* s = h.current.load(std::memory_order_relaxed);  // h.mu held: the latest
  return s ? s->sinks : std::vector<tap_sink*>{};
}

// Calls f(snapshot, stamp) inside a read section, with a stamp taken now; f is not called when
// no sink is attached.
template <class F>
void with_sinks_now(F&& f) {
  enter();
  if (const snapshot* s = the_hub().current.load(std::memory_order_seq_cst)) f(*s, record_stamp());
  leave();
}

// Stamps `env` and hands it to the sinks now.
void feed(const envelope_ptr& env) {
  with_sinks_now([&](const snapshot& s, std::uint64_t stamp) {
    for (auto* x : s.sinks) x->on_envelope(env, stamp);
  });
}

// `sent`: stamp the envelope and choose its sinks before any delivery, announce the stamp
// (pending) until the sinks have it, and call them at `routed`. The pending stamp is stored
// before the first delivery can be made, so whoever acts on this envelope stamps later than a
// sink's writer can see it pending (record_stamp_bound).
void on_sent(const envelope_ptr& ptr) {
  if (me.frames == max_frames) {
    me.routing = ptr.get();
    return feed(ptr);
  }
  enter();
  const snapshot* s = the_hub().current.load(std::memory_order_seq_cst);
  if (!s) return leave();
  const std::uint64_t stamp = record_stamp();
  if (me.frames == 0) me.slot->pending.store(stamp, std::memory_order_release);
  me.frame[me.frames++] = {ptr.get(), stamp, s, me.routing};
  me.routing = ptr.get();
}

void on_routed(const envelope_ptr& ptr) {
  if (me.frames == 0 || me.frame[me.frames - 1].env != ptr.get()) return;  // not tapped at `sent`
  // The frame stays until the sinks have the envelope: a sink that routes meanwhile nests
  // above it and leaves this (smaller) stamp pending. (With several sinks, what the first one
  // routes here reaches the later ones before this envelope: sinks that route are not ordered.)
  const routing_frame f = me.frame[me.frames - 1];
  me.routing = f.outer_routing;
  for (auto* x : f.sinks->sinks) x->on_envelope(ptr, f.stamp);
  if (--me.frames == 0) me.slot->pending.store(0, std::memory_order_release);
  leave();
}

void on_tap(const envelope_ptr& ptr, tap_point p) {
  if (p == tap_point::routed) return on_routed(ptr);  // even if the sinks left since `sent`
  if (the_hub().current.load(std::memory_order_relaxed) == nullptr) return;
  if (p == tap_point::sent) return on_sent(ptr);
  const envelope& env = *ptr;
  if (&env == me.routing) return;  // a local delivery of what this thread routes
  if (me.last_inbound.same(env)) return;
  me.last_inbound = {&env, env.seq, env.correlation, env.time.wall_ns, env.type_id};
  feed(ptr);
}

void on_handled(const envelope_ptr& env, const std::string& actor) {
  if (!the_hub().any_handled.load(std::memory_order_relaxed)) return;
  with_sinks_now([&](const snapshot& s, std::uint64_t stamp) {
    for (auto* x : s.handled) x->on_handled(env, actor, stamp);
  });
}

}  // namespace

std::uint64_t record_stamp() {
#if defined(__x86_64__)
  // rdtscp waits for the loads before it: the stamp comes after whatever caused this event.
  if (stamps_from_tsc()) {
    unsigned aux;
    return __rdtscp(&aux);
  }
#endif
  return stamp_counter.fetch_add(1, std::memory_order_seq_cst) + 1;
}

std::uint64_t record_stamp_bound() {
  std::uint64_t bound;
#if defined(__x86_64__)
  if (stamps_from_tsc()) {
    unsigned aux;
    bound = __rdtscp(&aux);
    _mm_lfence();  // the pending stamps are read after the bound
  } else
#endif
    bound = stamp_counter.load(std::memory_order_seq_cst) + 1;
  for_each_slot(the_hub(), [&](reader_slot& s) {
    const std::uint64_t p = s.pending.load(std::memory_order_seq_cst);
    if (p != 0 && p < bound) bound = p;
  });
  return bound;
}

void install_recorder_tap(node& n) {
  n.set_tap(on_tap);
  n.set_handled_tap(on_handled);
  the_hub().installed = true;
}

bool recorder_tap_installed() { return the_hub().installed.load(); }

// Every graph process (`gfdit node`) whose binary links this library gets the tap.
GFDIT_REGISTER_NODE_EXTENSION("gfdit.recorder_tap", install_recorder_tap);

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
