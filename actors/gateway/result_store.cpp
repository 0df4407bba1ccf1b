#include "actors/gateway/result_store.hpp"

#include <algorithm>
#include <random>

namespace gfdit::gateway {
namespace {

std::string random_id() {
  thread_local std::random_device rd;  // the kernel's generator: not predictable from earlier ids
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t v = rd();
    for (int s = 28; s >= 0; s -= 4) id += hex[(v >> s) & 15];
  }
  return id;
}

}  // namespace

void result_store::expire(clock::time_point now) {
  for (auto it = items_.begin(); it != items_.end();) {
    if (it->second.expires > now) {
      ++it;
      continue;
    }
    stats_.bytes -= it->second.bytes.size();
    ++stats_.expired;
    it = items_.erase(it);
  }
}

std::string result_store::put(std::vector<std::uint8_t> bytes, clock::time_point now) {
  std::lock_guard lock(mu_);
  expire(now);
  std::string id = random_id();
  while (items_.count(id)) id = random_id();
  stats_.bytes += bytes.size();
  ++stats_.stored;
  items_.emplace(id, entry{std::move(bytes), now + ttl_});
  return id;
}

std::optional<std::vector<std::uint8_t>> result_store::get(const std::string& id, clock::time_point now) {
  std::lock_guard lock(mu_);
  expire(now);
  auto it = items_.find(id);
  if (it == items_.end()) return std::nullopt;
  ++stats_.fetched;
  it->second.expires = std::min(it->second.expires, now + refetch);
  return it->second.bytes;
}

bool result_store::full(clock::time_point now) {
  std::lock_guard lock(mu_);
  expire(now);
  return stats_.bytes >= max_bytes_;
}

store_stats result_store::stats(clock::time_point now) {
  std::lock_guard lock(mu_);
  expire(now);
  store_stats s = stats_;
  s.images = items_.size();
  s.max_bytes = max_bytes_;
  return s;
}

}  // namespace gfdit::gateway
