#include "launch/lib/node_metrics.hpp"

#include <cstdint>

namespace gfdit::launch {
namespace {

// Label values escaped as the text format asks (backslash, quote, newline).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string node_metrics_text(const std::string& node, const std::vector<actor_info>& actors, const bus_stats& bus) {
  const std::string n = label(node);
  std::string out;
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
    family(out, c.name, "counter", c.help);
    for (const auto& a : actors)
      out += std::string(c.name) + "{node=\"" + n + "\",actor=\"" + label(a.name) + "\"} " + std::to_string(a.*c.field) + "\n";
  }
  family(out, "gfdit_actor_active", "gauge", "1 while the actor is active (its lifecycle state), else 0.");
  for (const auto& a : actors)
    out += "gfdit_actor_active{node=\"" + n + "\",actor=\"" + label(a.name) + "\",state=\"" + std::string(to_string(a.state)) + "\"} " +
           (a.state == lifecycle_state::active ? "1" : "0") + "\n";
  family(out, "gfdit_bus_frames_total", "counter", "Frames this node's bus sent and received.");
  out += "gfdit_bus_frames_total{node=\"" + n + "\",direction=\"sent\"} " + std::to_string(bus.sent) + "\n";
  out += "gfdit_bus_frames_total{node=\"" + n + "\",direction=\"received\"} " + std::to_string(bus.received) + "\n";
  family(out, "gfdit_bus_failed_total", "counter", "Frames that could not be sent (reported to their sender).");
  out += "gfdit_bus_failed_total{node=\"" + n + "\"} " + std::to_string(bus.failed) + "\n";
  family(out, "gfdit_bus_decode_errors_total", "counter", "Inbound frames that did not decode (dropped, counted).");
  out += "gfdit_bus_decode_errors_total{node=\"" + n + "\"} " + std::to_string(bus.decode_errors) + "\n";
  return out;
}

}  // namespace gfdit::launch
