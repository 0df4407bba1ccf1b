#include "launch/lib/node_metrics.hpp"

#include "actors/runtime/prometheus.hpp"

namespace gfdit::launch {

std::string node_metrics_text(const std::string& node, const std::vector<actor_info>& actors, const bus_stats& bus,
                              int restarts) {
  std::string out;
  prom::family(out, "gfdit_node_restarts_total", "counter",
               "Times the launcher restarted this process before this life.");
  prom::sample(out, "gfdit_node_restarts_total", {{"node", node}}, restarts);
  struct counter {
    const char* name;
    const char* help;
    std::uint64_t actor_info::*field;
  };
  const counter counters[] = {
      {"gfdit_actor_received_total", "Messages delivered to the actor.", &actor_info::received},
      {"gfdit_actor_sent_total", "Messages the actor sent or published.", &actor_info::sent},
      {"gfdit_actor_unhandled_total", "Messages of a type the actor has no handler for.", &actor_info::unhandled},
      {"gfdit_actor_decode_errors_total", "Messages to the actor that did not decode.", &actor_info::decode_errors},
      {"gfdit_actor_delivery_failures_total", "The actor's messages that could not be delivered.",
       &actor_info::delivery_failures}};
  for (const auto& c : counters) {
    prom::family(out, c.name, "counter", c.help);
    for (const auto& a : actors)
      prom::sample(out, c.name, {{"node", node}, {"actor", a.name}}, static_cast<double>(a.*c.field));
  }
  prom::family(out, "gfdit_actor_active", "gauge", "1 while the actor is active (its lifecycle state), else 0.");
  for (const auto& a : actors)
    prom::sample(out, "gfdit_actor_active",
                 {{"node", node}, {"actor", a.name}, {"state", std::string(to_string(a.state))}},
                 a.state == lifecycle_state::active ? 1 : 0);
  prom::family(out, "gfdit_bus_frames_total", "counter", "Frames this node's bus sent and received.");
  prom::sample(out, "gfdit_bus_frames_total", {{"node", node}, {"direction", "sent"}}, static_cast<double>(bus.sent));
  prom::sample(out, "gfdit_bus_frames_total", {{"node", node}, {"direction", "received"}},
               static_cast<double>(bus.received));
  prom::family(out, "gfdit_bus_failed_total", "counter", "Frames that could not be sent (reported to their sender).");
  prom::sample(out, "gfdit_bus_failed_total", {{"node", node}}, static_cast<double>(bus.failed));
  prom::family(out, "gfdit_bus_decode_errors_total", "counter",
               "Inbound frames that did not decode (dropped, counted).");
  prom::sample(out, "gfdit_bus_decode_errors_total", {{"node", node}}, static_cast<double>(bus.decode_errors));
  prom::family(out, "gfdit_bus_refused_total", "counter",
               "Connections whose CurveZMQ key the ZAP handler refused (keyed graphs).");
  prom::sample(out, "gfdit_bus_refused_total", {{"node", node}}, static_cast<double>(bus.refused));
  prom::family(out, "gfdit_bus_forged_total", "counter",
               "Frames dropped because their key may not speak for their sender (keyed graphs).");
  prom::sample(out, "gfdit_bus_forged_total", {{"node", node}}, static_cast<double>(bus.forged));
  for (const auto& a : actors) out += a.metrics;  // the actors' own
  return out;
}

}  // namespace gfdit::launch
