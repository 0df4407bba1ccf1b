#include "actors/runtime/parameters.hpp"

#include <stdexcept>

namespace gfdit {

const char* to_string(param_type t) noexcept {
  switch (t) {
    case param_type::boolean:
      return "bool";
    case param_type::integer:
      return "int";
    case param_type::real:
      return "double";
    case param_type::text:
      return "string";
    case param_type::map:
      return "map";
  }
  return "?";
}

result<nlohmann::json> parameters::coerce(param_type type, const nlohmann::json& v) {
  switch (type) {
    case param_type::boolean:
      if (v.is_boolean()) return v;
      break;
    case param_type::integer:
      if (v.is_number_integer()) return v;
      break;
    case param_type::real:
      if (v.is_number()) return nlohmann::json(v.get<double>());
      break;
    case param_type::text:
      if (v.is_string()) return v;
      break;
    case param_type::map:
      if (v.is_object()) return v;
      break;
  }
  return make_error(errc::invalid_argument,
                    std::string("expected ") + to_string(type) + ", got " + v.type_name() + " (" + v.dump() + ")");
}

result<void> parameters::declare_json(const std::string& name, param_type type, nlohmann::json default_value,
                                      std::string description, validator check) {
  if (name.empty()) return make_error(errc::invalid_argument, "parameter name is empty");
  if (entries_.count(name)) return make_error(errc::invalid_argument, "parameter '" + name + "' declared twice");
  auto v = coerce(type, default_value);
  if (!v) return make_error(errc::invalid_argument, "default of '" + name + "': " + v.err().what);
  if (check) {
    if (auto why = check(*v); !why.empty())
      return make_error(errc::invalid_argument, "default of '" + name + "' is invalid: " + why);
  }
  nlohmann::json initial = *v;
  const bool own = overrides_.is_object() && overrides_.contains(name);
  if (own || (globals_.is_object() && globals_.contains(name))) {
    const std::string what = own ? "parameter '" + name + "'" : "global parameter '" + name + "'";
    auto o = coerce(type, own ? overrides_[name] : globals_[name]);
    if (!o) return make_error(errc::invalid_argument, what + ": " + o.err().what);
    if (check) {
      if (auto why = check(*o); !why.empty())
        return make_error(errc::invalid_argument, what + " = " + o->dump() + ": " + why);
    }
    initial = *o;
  }
  entries_.emplace(name, entry{type, *v, initial, std::move(description), std::move(check), {}});
  return {};
}

result<void> parameters::check_overrides_used() const {
  if (!overrides_.is_object()) return make_error(errc::invalid_argument, "parameters must be a map");
  for (const auto& [k, v] : overrides_.items()) {
    if (entries_.count(k)) continue;
    std::string declared;
    for (const auto& [name, e] : entries_) declared += (declared.empty() ? "" : ", ") + name;
    return make_error(errc::not_found,
                      "unknown parameter '" + k + "' (declared: " + (declared.empty() ? "none" : declared) + ")");
  }
  return {};
}

const parameters::entry& parameters::at(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw std::out_of_range("undeclared parameter '" + name + "'");
  return it->second;
}

result<void> parameters::set(const std::string& name, const nlohmann::json& value) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return make_error(errc::not_found, "no parameter named '" + name + "'");
  auto v = coerce(it->second.type, value);
  if (!v) return make_error(errc::invalid_argument, "parameter '" + name + "': " + v.err().what);
  if (it->second.check) {
    if (auto why = it->second.check(*v); !why.empty())
      return make_error(errc::invalid_argument, "parameter '" + name + "': " + why);
  }
  it->second.value = *v;
  for (auto& w : it->second.watchers) w(*v);
  return {};
}

result<void> parameters::set_while_running(const std::string& name, const nlohmann::json& value) {
  auto it = entries_.find(name);
  if (it != entries_.end() && !it->second.settable)
    return make_error(errc::state,
                      "parameter '" + name +
                          "' is read once at configure: it cannot change while the actor runs (give it in the "
                          "launch file)");
  return set(name, value);
}

void parameters::settable(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw std::out_of_range("undeclared parameter '" + name + "'");
  it->second.settable = true;
}

void parameters::watch(const std::string& name, on_change fn) {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw std::out_of_range("undeclared parameter '" + name + "'");
  it->second.watchers.push_back(std::move(fn));
  it->second.settable = true;
}

nlohmann::json parameters::values() const {
  auto j = nlohmann::json::object();
  for (const auto& [k, e] : entries_) j[k] = e.value;
  return j;
}

nlohmann::json parameters::describe() const {
  auto j = nlohmann::json::object();
  for (const auto& [k, e] : entries_)
    j[k] = {{"type", to_string(e.type)},
            {"default", e.default_value},
            {"value", e.value},
            {"description", e.description},
            {"settable", e.settable}};
  return j;
}

}  // namespace gfdit
