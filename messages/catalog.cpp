#include "messages/catalog.hpp"

#include "messages/builtin.hpp"

namespace gfdit {

catalog& catalog::global() {
  static catalog* instance = [] {
    static catalog c;
    register_builtin_messages(c);
    return &c;
  }();
  return *instance;
}

result<void> catalog::add_entry(catalog_entry entry) {
  std::lock_guard lock(mu_);
  if (auto it = by_id_.find(entry.id); it != by_id_.end()) {
    if (it->second.name == entry.name) return {};  // registered twice: harmless
    return make_error(errc::invalid_argument, "message '" + entry.name + "' hashes to id " + std::to_string(entry.id) +
                                                  ", already taken by '" + it->second.name + "'");
  }
  by_name_.emplace(entry.name, entry.id);
  by_id_.emplace(entry.id, std::move(entry));
  return {};
}

const catalog_entry* catalog::find(std::uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

const catalog_entry* catalog::find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  return &by_id_.at(it->second);
}

std::vector<catalog_entry> catalog::list() const {
  std::lock_guard lock(mu_);
  std::vector<catalog_entry> out;
  for (const auto& [name, id] : by_name_) out.push_back(by_id_.at(id));
  return out;
}

nlohmann::json catalog::render(const envelope& env) const {
  static const char* routes[] = {"direct", "topic", "reply", "failure"};
  nlohmann::json j = {{"seq", env.seq},
                      {"sender", valid_utf8(env.sender)},  // names off the wire: any bytes
                      {"destination", valid_utf8(env.destination)},
                      {"route", routes[static_cast<int>(env.kind)]},
                      {"logical", env.time.logical},
                      {"wall_ns", env.time.wall_ns},
                      {"trace_id", env.trace_id},
                      {"correlation", env.correlation},
                      {"type_id", env.type_id},
                      {"version", env.version}};
  if (const auto* e = find(env.type_id)) {
    j["type"] = e->name;
    auto body = e->to_json(env.payload);
    if (body)
      j["payload"] = *body;
    else
      j["payload_error"] = valid_utf8(body.err().what);
  } else {
    j["type"] = nullptr;
    auto h = unpack_bounded(env.payload);
    if (h)
      j["payload"] = to_json(h->get());
    else
      j["payload_error"] = valid_utf8(h.err().what);
  }
  return j;
}

}  // namespace gfdit
