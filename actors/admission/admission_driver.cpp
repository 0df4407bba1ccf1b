#include "actors/admission/admission_driver.hpp"

#include "actors/runtime/prometheus.hpp"

#include "actors/serving/model_time.hpp"
#include "actors/serving/serving_names.hpp"

namespace gfdit {

namespace names = serving_names;

std::vector<std::string> admission_driver::topics() const { return {names::done_topic, names::workers_topic}; }

std::string admission_driver::metrics_text(const std::string& actor) const {
  std::string out;
  prom::family(out, "gfdit_admission_requests_total", "counter", "Requests admitted and rejected.");
  prom::sample(out, "gfdit_admission_requests_total", {{"actor", actor}, {"outcome", "admitted"}},
               static_cast<double>(core_.admitted_count()));
  prom::sample(out, "gfdit_admission_requests_total", {{"actor", actor}, {"outcome", "rejected"}},
               static_cast<double>(core_.rejected_count()));
  prom::family(out, "gfdit_admission_outstanding", "gauge", "Admitted requests not yet finished (the bounded queue).");
  prom::sample(out, "gfdit_admission_outstanding", {{"actor", actor}}, static_cast<double>(core_.outstanding()));
  return out;
}

std::vector<outgoing> admission_driver::feed(const envelope& env) {
  std::vector<outgoing> out;
  if (env.kind == route::direct && env.is<msg::generate_request>()) {
    auto req = decode<msg::generate_request>(env.payload);
    if (!req) return out;
    auto answer = core_.on_request(*req, model_now_us(env, speedup_));
    if (auto* a = std::get_if<msg::admitted>(&answer)) {
      out.push_back(make_outgoing(route::direct, env.sender, *a));
      out.push_back(make_outgoing(route::direct, names::scheduler, *a));
    } else {
      out.push_back(make_outgoing(route::direct, env.sender, std::get<msg::rejected>(answer)));
    }
  } else if (env.kind == route::topic && env.destination == names::done_topic && env.is<msg::request_done>()) {
    if (auto d = decode<msg::request_done>(env.payload)) core_.on_request_done(*d);
  } else if (env.kind == route::topic && env.destination == names::workers_topic && env.is<msg::worker_hello>()) {
    if (auto h = decode<msg::worker_hello>(env.payload)) core_.on_worker_hello(*h);
  }
  return out;
}

}  // namespace gfdit
