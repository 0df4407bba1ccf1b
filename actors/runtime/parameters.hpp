#pragma once
// Declared, typed parameters of one actor: a default, a description and a validator, readable
// and settable at run time (locally or through system.parameter_set). Values are JSON so every
// type has one wire form; the declared type is enforced on every set.
#include <functional>
#include <map>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace gfdit {

enum class param_type { boolean, integer, real, text, map };  // map: a JSON object

const char* to_string(param_type t) noexcept;

class parameters {
 public:
  // Returns "" when the value is acceptable, else the reason it is not.
  using validator = std::function<std::string(const nlohmann::json&)>;
  using on_change = std::function<void(const nlohmann::json&)>;

  template <class T>
  result<void> declare(const std::string& name, T default_value, std::string description = {},
                       std::function<std::string(const T&)> check = {}) {
    validator v;
    if (check) v = [check](const nlohmann::json& j) { return check(j.get<T>()); };
    return declare_json(name, type_of<T>(), nlohmann::json(default_value), std::move(description), std::move(v));
  }

  result<void> declare_json(const std::string& name, param_type type, nlohmann::json default_value,
                            std::string description, validator check);

  // Values given from outside (a launch file) before the actor declares its parameters: a
  // declaration takes its override as the initial value, type-checked and validated.
  void set_overrides(nlohmann::json values) { overrides_ = std::move(values); }
  // The graph's global parameters: a declaration without an override takes its global value
  // (type-checked and validated); globals nobody declares are not errors.
  void set_globals(nlohmann::json values) { globals_ = std::move(values); }
  // After configuration: an override no declaration took is an error naming it.
  result<void> check_overrides_used() const;

  template <class T>
  T get(const std::string& name) const {
    return at(name).value.get<T>();
  }
  const nlohmann::json& get_json(const std::string& name) const { return at(name).value; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  // Type-checked and validated; the old value stays when it fails.
  result<void> set(const std::string& name, const nlohmann::json& value);
  // A change while the actor runs (system.parameter_set, `gfdit param set`): only for parameters
  // the actor said it applies then (settable, or watched); others are refused, saying they are
  // read once at configure, instead of reporting a change that never takes effect.
  result<void> set_while_running(const std::string& name, const nlohmann::json& value);
  // The actor reads this parameter afresh each time it needs it, so a change acts at once.
  void settable(const std::string& name);
  // Called with each new value; a watched parameter is settable.
  void watch(const std::string& name, on_change fn);
  bool is_settable(const std::string& name) const { return has(name) && at(name).settable; }

  nlohmann::json values() const;    // {"name": value}
  nlohmann::json describe() const;  // {"name": {"type", "default", "value", "description", "settable"}}

  template <class T>
  static constexpr param_type type_of() {
    if constexpr (std::is_same_v<T, bool>)
      return param_type::boolean;
    else if constexpr (std::is_integral_v<T>)
      return param_type::integer;
    else if constexpr (std::is_floating_point_v<T>)
      return param_type::real;
    else
      return param_type::text;
  }

 private:
  struct entry {
    param_type type;
    nlohmann::json default_value;
    nlohmann::json value;
    std::string description;
    validator check;
    std::vector<on_change> watchers;
    bool settable = false;
  };
  const entry& at(const std::string& name) const;
  static result<nlohmann::json> coerce(param_type type, const nlohmann::json& v);

  std::map<std::string, entry> entries_;
  nlohmann::json globals_;
  nlohmann::json overrides_ = nlohmann::json::object();
};

}  // namespace gfdit
