#pragma once
// Feeds a node's tap to the recorder actors of this process. The tap sees an envelope when it
// is sent and again at each local delivery; recorders want each envelope once, so this keeps
// every `sent` event and only the `delivered` events of envelopes that came from another node
// (once, however many local subscribers they have).
#include <cstdint>
#include <memory>
#include <string>

#include "messages/envelope.hpp"

namespace gfdit {

class node;

// Every tapped event gets a stamp on the tapping thread: an event that happens before another
// gets a smaller stamp, so a sink that orders its records by stamp keeps causes before their
// effects. An envelope this process routes is stamped when routing starts, before its
// deliveries, and handed to the sinks once they are done (tap_point::routed): the sinks' work is
// off the delivery's critical path. So a receiver may act on an envelope before the sinks have
// it; record_stamp_bound() says below which stamp nothing can still come.
class tap_sink {
 public:
  virtual ~tap_sink() = default;
  // Called on whichever thread routes or receives the envelope; must be thread-safe and quick
  // (it runs on the bus's hot path).
  virtual void on_envelope(const envelope_ptr& env, std::uint64_t stamp) = 0;
  // On `actor`'s own thread, right before it handles `env` (node::set_handled_tap), in the
  // order it handles them. Thread-safe like on_envelope.
  virtual void on_handled(const envelope_ptr& env, const std::string& actor, std::uint64_t stamp) {
    (void)env, (void)actor, (void)stamp;
  }
  // Whether on_handled is wanted at all (asked once, at attach): when no sink wants it, the
  // dispatch hook costs one relaxed load.
  virtual bool wants_handled() const { return false; }
};

// Installs the recorder tap on `n`, and its dispatch-order hook (once per node; before start()
// so nothing is missed). Registered as the node extension "gfdit.recorder_tap"
// (actors/runtime/node_extension.hpp), so every `gfdit node` process gets it; a program that
// makes its own nodes calls it.
void install_recorder_tap(node& n);
// Recorders attach and detach themselves (on activate / deactivate).
void attach_tap_sink(tap_sink* s);
void detach_tap_sink(tap_sink* s);
// Whether any node of this process has the recorder tap installed.
bool recorder_tap_installed();

// A stamp taken now: the time-stamp counter where the kernel keeps time with it (synchronised
// across cores), else a process-wide counter. Never 0.
std::uint64_t record_stamp();
// The bound below which a sink may write its records in stamp order: a stamp taken now (read
// first, and fenced), lowered to the smallest stamp of an envelope whose routing started and
// whose sinks were not called yet. A writer that reads the bound first and its records after
// finds, with each record stamped below the bound, every record that happened before it.
std::uint64_t record_stamp_bound();

}  // namespace gfdit
