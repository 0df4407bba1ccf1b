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
  prom::family(out, "gfdit_admission_request_seconds", "histogram",
               "Latency of finished requests, arrival to done, by status (model seconds; wall seconds at speedup 1).");
  for (const auto& [status, h] : latency_)
    h.write(out, "gfdit_admission_request_seconds", {{"actor", actor}, {"status", status}});
  return out;
}

std::vector<outgoing> admission_driver::feed(const inbound& in) {
  std::vector<outgoing> out;
  if (in.kind == route::direct && in.is<msg::generate_request>()) {
    const auto* req = in.get<msg::generate_request>();
    if (!req) return out;
    auto answer = core_.on_request(*req, model_now_us(in.wall_ns, speedup_));
    if (auto* a = std::get_if<msg::admitted>(&answer)) {
      // One message for both receivers (encoded once where it is sent).
      const outgoing to_scheduler = make_outgoing(route::direct, names::scheduler, std::move(*a));
      out.push_back({route::direct, std::string(in.sender), to_scheduler.message});
      out.push_back(to_scheduler);
    } else {
      out.push_back(make_outgoing(route::direct, std::string(in.sender), std::move(std::get<msg::rejected>(answer))));
    }
  } else if (in.kind == route::topic && in.destination == names::done_topic && in.is<msg::request_done>()) {
    if (const auto* d = in.get<msg::request_done>()) {
      core_.on_request_done(*d);
      static const std::vector<double> bounds_s = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800};
      latency_.try_emplace(d->status, bounds_s).first->second.observe(static_cast<double>(d->latency_us) / 1e6);
    }
  } else if (in.kind == route::topic && in.destination == names::workers_topic && in.is<msg::worker_hello>()) {
    if (const auto* h = in.get<msg::worker_hello>()) core_.on_worker_hello(*h);
  }
  return out;
}

}  // namespace gfdit
