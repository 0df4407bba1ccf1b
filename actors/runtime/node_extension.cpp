#include "actors/runtime/node_extension.hpp"

#include <mutex>

namespace gfdit {
namespace {
std::mutex extensions_mu;
}

node_extension_registry& node_extension_registry::global() {
  static node_extension_registry r;
  return r;
}

bool node_extension_registry::add(const std::string& name, node_extension fn) {
  std::lock_guard lock(extensions_mu);
  for (const auto& e : entries_)
    if (e.first == name) return false;
  entries_.emplace_back(name, std::move(fn));
  return true;
}

void node_extension_registry::apply(node& n) const {
  std::vector<node_extension> fns;
  {
    std::lock_guard lock(extensions_mu);  // an extension may load code that registers more
    for (const auto& e : entries_) fns.push_back(e.second);
  }
  for (const auto& f : fns) f(n);
}

std::vector<std::string> node_extension_registry::names() const {
  std::lock_guard lock(extensions_mu);
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.first);
  return out;
}

}  // namespace gfdit
