#pragma once
// The recorder and player actor types. Linking gfdit_recorder registers them; calling this makes
// sure the linker keeps the library (and says which types they are).
//
// gfdit.recorder  writes a bag. Fed by the node's tap (install_recorder_tap(node), every
//                 envelope: directed, topic, replies) or, with source "subscribe", by
//                 subscribe_raw("*") (topic messages of the whole graph, from any node).
//   path, topics, actors, senders, types (comma lists), source, overflow (block|drop),
//   queue_mb, chunk_kb, flush_ms, stats_topic, stats_ms, launch_file, launch_text,
//   handled (actors whose dispatch order is recorded, for exact replay), parameters_of
//   (actors asked for their parameters at activation); an empty path (default) records nothing
// gfdit.player    re-publishes a bag into the live graph with forward() (senders and stamps
//                 kept).
//   path, rate (0: as fast as possible), loop, start_s, end_s (offsets from the bag's first
//   message), topics, actors, senders, types, stop_at_end; standing in for an actor
//   (`replay --replace`): subscribe, gate, gate_timeout_ms, done_file (player_actor.cpp)
#include <string>
#include <vector>

namespace gfdit {
std::vector<std::string> recorder_actor_types();
}
