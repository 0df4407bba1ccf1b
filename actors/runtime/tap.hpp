#pragma once
// One hook that sees every envelope a node sends or delivers (the recorder's feed). When no tap
// is set, the cost is one relaxed atomic load per message.
#include <functional>
#include <string>

#include "messages/envelope.hpp"

namespace gfdit {

// `sent` fires when a node starts routing an envelope, before any delivery; `delivered` at
// each local delivery (before the mailbox); `routed` once the node is done routing what it saw
// `sent` (deliveries made, remote posts queued), on the same thread, however route() ends. A
// tap may take its decision at `sent` and do its slower work at `routed`, off the critical path
// of the delivery (the recorder does: bench/RESULTS.md § recorder overhead).
enum class tap_point { sent, delivered, routed };

// The envelope comes as the shared pointer the node routes: a tap that keeps it (the recorder)
// takes a reference count, not a copy.
using tap_fn = std::function<void(const envelope_ptr&, tap_point)>;

// A second hook, on the receiving actor's own thread right before a message reaches its
// handlers (held messages included, at activation), naming that actor. The `delivered` point
// fires before the mailbox, so two threads delivering to one actor at once may be seen in
// either order; this one sees the order the actor really handled them (what exact replay needs).
// Lifecycle and parameter messages, which the runtime serves itself, do not pass here.
using handled_tap_fn = std::function<void(const envelope_ptr&, const std::string& actor)>;

}  // namespace gfdit
