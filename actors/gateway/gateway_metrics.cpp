#include "actors/gateway/gateway_metrics.hpp"

#include <cstdio>

namespace gfdit::gateway {
namespace {

void line(std::string& out, const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  out += buf;
}

}  // namespace

void gateway_metrics::reply(int status) {
  std::lock_guard lock(mu_);
  ++replies_[status];
}

void gateway_metrics::answered(double seconds, int images) {
  std::lock_guard lock(mu_);
  ++answered_;
  images_ += static_cast<std::uint64_t>(images);
  seconds_ += seconds;
  for (std::size_t i = 0; i < buckets.size(); ++i)
    if (seconds <= buckets[i]) {
      ++counts_[i];
      break;
    }
}

void gateway_metrics::cancelled(const std::string& cause) {
  std::lock_guard lock(mu_);
  ++cancelled_[cause];
}

std::string gateway_metrics::text(std::int64_t outstanding_images, const store_stats& store) const {
  std::lock_guard lock(mu_);
  std::string out;
  out += "# HELP gfdit_gateway_replies_total Replies to POST /v1/images/generations, by HTTP status.\n";
  out += "# TYPE gfdit_gateway_replies_total counter\n";
  for (const auto& [status, n] : replies_)
    line(out, "gfdit_gateway_replies_total{status=\"%d\"} %llu\n", status, static_cast<unsigned long long>(n));
  out += "# HELP gfdit_gateway_request_seconds Wall time of answered (200) requests.\n";
  out += "# TYPE gfdit_gateway_request_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    cumulative += counts_[i];
    line(out, "gfdit_gateway_request_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
         static_cast<unsigned long long>(cumulative));
  }
  line(out, "gfdit_gateway_request_seconds_bucket{le=\"+Inf\"} %llu\n", static_cast<unsigned long long>(answered_));
  line(out, "gfdit_gateway_request_seconds_sum %.6f\n", seconds_);
  line(out, "gfdit_gateway_request_seconds_count %llu\n", static_cast<unsigned long long>(answered_));
  out += "# HELP gfdit_gateway_images_total Pictures answered.\n# TYPE gfdit_gateway_images_total counter\n";
  line(out, "gfdit_gateway_images_total %llu\n", static_cast<unsigned long long>(images_));
  out += "# HELP gfdit_gateway_cancelled_total Requests cancelled in the graph, by cause.\n";
  out += "# TYPE gfdit_gateway_cancelled_total counter\n";
  for (const char* cause : {"disconnect", "timeout"}) {
    auto it = cancelled_.find(cause);
    line(out, "gfdit_gateway_cancelled_total{cause=\"%s\"} %llu\n", cause,
         static_cast<unsigned long long>(it == cancelled_.end() ? 0 : it->second));
  }
  out += "# HELP gfdit_gateway_outstanding_images Pictures in flight.\n# TYPE gfdit_gateway_outstanding_images gauge\n";
  line(out, "gfdit_gateway_outstanding_images %lld\n", static_cast<long long>(outstanding_images));
  out += "# HELP gfdit_gateway_store_images Pictures waiting in the url store.\n# TYPE gfdit_gateway_store_images gauge\n";
  line(out, "gfdit_gateway_store_images %zu\n", store.images);
  out += "# HELP gfdit_gateway_store_bytes Bytes in the url store (and its limit).\n# TYPE gfdit_gateway_store_bytes gauge\n";
  line(out, "gfdit_gateway_store_bytes %zu\n", store.bytes);
  line(out, "gfdit_gateway_store_max_bytes %zu\n", store.max_bytes);
  out += "# TYPE gfdit_gateway_store_events_total counter\n";
  line(out, "gfdit_gateway_store_events_total{event=\"stored\"} %llu\n", static_cast<unsigned long long>(store.stored));
  line(out, "gfdit_gateway_store_events_total{event=\"fetched\"} %llu\n", static_cast<unsigned long long>(store.fetched));
  line(out, "gfdit_gateway_store_events_total{event=\"expired\"} %llu\n", static_cast<unsigned long long>(store.expired));
  return out;
}

}  // namespace gfdit::gateway
