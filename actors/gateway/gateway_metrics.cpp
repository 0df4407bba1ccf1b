#include "actors/gateway/gateway_metrics.hpp"

#include <cstdio>

#include "actors/runtime/prometheus.hpp"

namespace gfdit::gateway {

void gateway_metrics::reply(int status) {
  std::lock_guard lock(mu_);
  ++replies_[status];
}

void gateway_metrics::answered(double seconds, int images) {
  std::lock_guard lock(mu_);
  images_ += static_cast<std::uint64_t>(images);
  seconds_.observe(seconds);
}

void gateway_metrics::cancelled(const std::string& cause) {
  std::lock_guard lock(mu_);
  ++cancelled_[cause];
}

std::string gateway_metrics::text(std::int64_t outstanding_images, const store_stats& store) const {
  std::lock_guard lock(mu_);
  std::string out;
  const auto n = [](auto v) { return static_cast<double>(v); };
  prom::family(out, "gfdit_gateway_replies_total", "counter",
               "Replies to POST /v1/images/generations, by HTTP status.");
  for (const auto& [status, count] : replies_)
    prom::sample(out, "gfdit_gateway_replies_total", {{"status", std::to_string(status)}}, n(count));
  prom::family(out, "gfdit_gateway_request_seconds", "histogram", "Wall time of answered (200) requests.");
  seconds_.write(out, "gfdit_gateway_request_seconds", {});
  prom::family(out, "gfdit_gateway_images_total", "counter", "Pictures answered.");
  prom::sample(out, "gfdit_gateway_images_total", {}, n(images_));
  prom::family(out, "gfdit_gateway_cancelled_total", "counter", "Requests cancelled in the graph, by cause.");
  for (const char* cause : {"disconnect", "timeout"}) {
    auto it = cancelled_.find(cause);
    prom::sample(out, "gfdit_gateway_cancelled_total", {{"cause", cause}}, n(it == cancelled_.end() ? 0 : it->second));
  }
  prom::family(out, "gfdit_gateway_outstanding_images", "gauge", "Pictures in flight.");
  prom::sample(out, "gfdit_gateway_outstanding_images", {}, n(outstanding_images));
  prom::family(out, "gfdit_gateway_store_images", "gauge", "Pictures waiting in the url store.");
  prom::sample(out, "gfdit_gateway_store_images", {}, n(store.images));
  prom::family(out, "gfdit_gateway_store_bytes", "gauge", "Bytes in the url store.");
  prom::sample(out, "gfdit_gateway_store_bytes", {}, n(store.bytes));
  prom::family(out, "gfdit_gateway_store_max_bytes", "gauge", "The url store's limit.");
  prom::sample(out, "gfdit_gateway_store_max_bytes", {}, n(store.max_bytes));
  prom::family(out, "gfdit_gateway_store_events_total", "counter", "Pictures stored, fetched and expired.");
  prom::sample(out, "gfdit_gateway_store_events_total", {{"event", "stored"}}, n(store.stored));
  prom::sample(out, "gfdit_gateway_store_events_total", {{"event", "fetched"}}, n(store.fetched));
  prom::sample(out, "gfdit_gateway_store_events_total", {{"event", "expired"}}, n(store.expired));
  return out;
}

}  // namespace gfdit::gateway
