#pragma once
// Feeds a node's tap to the recorder actors of this process. The tap sees an envelope when it
// is sent and again at each local delivery; recorders want each envelope once, so this keeps
// every `sent` event and only the `delivered` events of envelopes that came from another node
// (once, however many local subscribers they have).
#include <memory>
#include <string>

#include "messages/envelope.hpp"

namespace gfdit {

class node;

class tap_sink {
 public:
  virtual ~tap_sink() = default;
  // Called on whichever thread routes or receives the envelope; must be thread-safe and quick
  // (it runs on the bus's hot path): keep the pointer, encode elsewhere.
  virtual void on_envelope(const envelope_ptr& env) = 0;
  // On `actor`'s own thread, right before it handles `env` (node::set_handled_tap), in the
  // order it handles them. Thread-safe like on_envelope.
  virtual void on_handled(const envelope_ptr& env, const std::string& actor) { (void)env, (void)actor; }
  // Whether on_handled is wanted at all (asked once, at attach): when no sink wants it, the
  // dispatch hook costs one relaxed load.
  virtual bool wants_handled() const { return false; }
};

// Installs the recorder tap on `n`, and its dispatch-order hook (once per node; before start()
// so nothing is missed).
void install_recorder_tap(node& n);
// Recorders attach and detach themselves (on activate / deactivate).
void attach_tap_sink(tap_sink* s);
void detach_tap_sink(tap_sink* s);
// Whether any node of this process has the recorder tap installed.
bool recorder_tap_installed();

}  // namespace gfdit
