#pragma once
// Actor types by name, so graphs (and plugins) can name them. A type registers with one macro:
//   GFDIT_REGISTER_ACTOR(my_actor, "my.actor")
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/runtime/actor.hpp"

namespace gfdit {

using actor_factory = std::function<std::unique_ptr<actor>()>;

struct actor_type_info {
  std::string name;
  std::string origin;  // "builtin" or the plugin path that registered it
};

class actor_registry {
 public:
  static actor_registry& global();
  // Registering a name twice keeps the first and returns false.
  bool add(const std::string& type, actor_factory factory, std::string origin = "builtin");
  std::unique_ptr<actor> make(const std::string& type) const;
  bool has(const std::string& type) const;
  std::vector<actor_type_info> list() const;  // sorted
  // Plugins loaded after this call are tagged with `origin`.
  void set_origin(std::string origin);
  const std::string& origin() const;

 private:
  struct entry {
    actor_factory factory;
    std::string origin;
  };
  std::vector<std::pair<std::string, entry>> entries_;
  std::string origin_ = "builtin";
};

namespace detail {
struct actor_registrar {
  actor_registrar(const char* type, actor_factory f) {
    actor_registry::global().add(type, std::move(f), actor_registry::global().origin());
  }
};
}  // namespace detail

}  // namespace gfdit

#define GFDIT_CONCAT_INNER(a, b) a##b
#define GFDIT_CONCAT(a, b) GFDIT_CONCAT_INNER(a, b)
#define GFDIT_REGISTER_ACTOR(cls, type_name)                                              \
  static ::gfdit::detail::actor_registrar GFDIT_CONCAT(gfdit_actor_registrar_, __LINE__)( \
      type_name, [] { return std::unique_ptr<::gfdit::actor>(std::make_unique<cls>()); })
