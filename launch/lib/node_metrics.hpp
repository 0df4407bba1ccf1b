#pragma once
// A node's counters in Prometheus' text format, served on GET /metrics when the launch file
// says `metrics: {port_base: N}` (instance k of the graph on metrics.bind:N+k): per actor,
// messages received and sent, unhandled ones, decode errors, delivery failures and whether it is
// active; for the node's bus, frames sent and received, failed sends and undecodable frames.
#include <string>
#include <vector>

#include "actors/runtime/bus.hpp"
#include "actors/runtime/node.hpp"

namespace gfdit::launch {

// `restarts`: how many times the launcher restarted this process before this life.
std::string node_metrics_text(const std::string& node, const std::vector<actor_info>& actors, const bus_stats& bus,
                              int restarts = 0);

}  // namespace gfdit::launch
