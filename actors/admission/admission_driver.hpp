#pragma once
// Admission's whole message-level behaviour: one message in, the messages it causes out. A
// directed GenerateRequest is answered to its sender, and an Admitted also goes to the
// scheduler; a RequestDone on "serving.done" frees its place. The actor shell (driver_actor),
// the simulator and `gfdit replay --actor admission` all run this one routing table.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/admission/admission_core.hpp"
#include "actors/runtime/inbound.hpp"
#include "actors/runtime/outgoing.hpp"
#include "actors/runtime/prometheus.hpp"

namespace gfdit {

struct admission_driver_config {
  admission_config core;
  double speedup = 1.0;  // model microseconds per wall microsecond of the stamps
};

class admission_driver {
 public:
  admission_driver(std::shared_ptr<const cost_model> costs, admission_driver_config cfg)
      : costs_(std::move(costs)), core_(*costs_, cfg.core), speedup_(cfg.speedup) {}

  std::vector<outgoing> feed(const inbound& in);
  std::vector<std::string> topics() const;

  const admission_core& core() const { return core_; }
  void resume(const std::vector<msg::admitted>& open, std::uint64_t next_id) { core_.resume(open, next_id); }
  // Prometheus text of admitted / rejected / outstanding and the latency histogram by status
  // (driver_actor publishes it every second).
  std::string metrics_text(const std::string& actor) const;

 private:
  std::shared_ptr<const cost_model> costs_;
  admission_core core_;
  double speedup_;
  // Finished requests' latency (model seconds: wall seconds at speedup 1), by status.
  std::map<std::string, prom::histogram> latency_;
};

}  // namespace gfdit
