#include "actors/runtime/registry.hpp"

#include <algorithm>
#include <mutex>

namespace gfdit {
namespace {
std::mutex registry_mu;
}

actor_registry& actor_registry::global() {
  static actor_registry r;
  return r;
}

bool actor_registry::add(const std::string& type, actor_factory factory, std::string origin) {
  std::lock_guard lock(registry_mu);
  for (const auto& [name, e] : entries_)
    if (name == type) return false;
  entries_.push_back({type, entry{std::move(factory), std::move(origin)}});
  std::sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return true;
}

std::unique_ptr<actor> actor_registry::make(const std::string& type) const {
  std::lock_guard lock(registry_mu);
  for (const auto& [name, e] : entries_)
    if (name == type) return e.factory();
  return nullptr;
}

bool actor_registry::has(const std::string& type) const {
  std::lock_guard lock(registry_mu);
  for (const auto& [name, e] : entries_)
    if (name == type) return true;
  return false;
}

std::vector<actor_type_info> actor_registry::list() const {
  std::lock_guard lock(registry_mu);
  std::vector<actor_type_info> out;
  for (const auto& [name, e] : entries_) out.push_back({name, e.origin});
  return out;
}

void actor_registry::set_origin(std::string origin) {
  std::lock_guard lock(registry_mu);
  origin_ = std::move(origin);
}

const std::string& actor_registry::origin() const { return origin_; }

}  // namespace gfdit
