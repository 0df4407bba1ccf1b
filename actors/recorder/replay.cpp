#include "actors/recorder/replay.hpp"

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "actors/recorder/handled_marker.hpp"
#include "messages/catalog.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

std::mutex registry_mu;

// What the runtime itself serves (lifecycle and parameters) never reaches a core.
bool runtime_served(const envelope& env) {
  return env.is<msg::lifecycle_command>() || env.is<msg::parameter_get>() || env.is<msg::parameter_set>() ||
         ((env.kind == route::reply || env.kind == route::failure) &&
          (env.is<msg::lifecycle_state>() || env.is<msg::parameter_value>()));
}

}  // namespace

bool replayable_core::accepts(const envelope& env, const std::string& actor) const {
  if (env.kind == route::topic) {
    const auto t = topics();
    return std::find(t.begin(), t.end(), env.destination) != t.end();
  }
  return env.destination == actor && !runtime_served(env);
}

bool replayable_core::produces(const envelope& env, const std::string& actor) const {
  return env.sender == actor && !(env.kind != route::topic && env.destination == actor) && !runtime_served(env);
}

replayable_core_registry& replayable_core_registry::global() {
  static replayable_core_registry r;
  return r;
}

bool replayable_core_registry::add(const std::string& name, replayable_core_factory f) {
  std::lock_guard lock(registry_mu);
  for (const auto& [n, _] : entries_)
    if (n == name) return false;
  entries_.emplace_back(name, std::move(f));
  return true;
}

result<std::unique_ptr<replayable_core>> replayable_core_registry::make(const std::string& name,
                                                                        const replay_params& p) const {
  replayable_core_factory f;
  {
    std::lock_guard lock(registry_mu);
    for (const auto& [n, fn] : entries_)
      if (n == name) f = fn;
  }
  if (!f) {
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    return make_error(errc::not_found,
                      "no replayable core named '" + name + "' (known: " + (known.empty() ? "none" : known) + ")");
  }
  return f(p);
}

std::vector<std::string> replayable_core_registry::names() const {
  std::lock_guard lock(registry_mu);
  std::vector<std::string> out;
  for (const auto& [n, _] : entries_) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

bool same_output(const envelope& a, const envelope& b) {
  return a.type_id == b.type_id && a.version == b.version && a.kind == b.kind && a.destination == b.destination &&
         a.correlation == b.correlation && a.payload == b.payload;
}

nlohmann::json divergence::to_json() const {
  auto side = [](const std::optional<envelope>& e) -> nlohmann::json {
    if (!e) return nullptr;
    auto j = catalog::global().render(*e);
    for (const char* k : {"seq", "logical", "wall_ns", "trace_id", "sender"}) j.erase(k);
    return j;
  };
  return {{"index", index}, {"input_index", input_index}, {"expected", side(expected)}, {"actual", side(actual)}};
}

result<nlohmann::json> recorded_parameters(bag::reader& r, const std::string& actor) {
  nlohmann::json out = nlohmann::json::object();
  r.set_filter({});
  if (auto e = r.seek(0); !e) return e.err();
  while (true) {
    auto n = r.next();
    if (!n) return n.err();
    if (!*n) break;
    const auto& env = (*n)->env;
    if (env.sender != actor || env.kind != route::reply || !env.is<msg::parameter_value>()) continue;
    auto v = decode<msg::parameter_value>(env.payload);
    if (!v || !v->error.empty()) continue;
    auto j = nlohmann::json::parse(v->values_json, nullptr, false);
    if (j.is_object()) out = std::move(j);
  }
  return out;
}

result<replay_script> load_script(bag::reader& r, const std::string& actor, const replayable_core& core) {
  replay_script s;
  r.set_filter({});
  if (auto e = r.seek(0); !e) return e.err();
  // With dispatch markers, an input is what a marker of this actor points at, in marker order.
  // A marker always follows its message in a bag (the tap records a message when it is sent or
  // arrives, the marker when it is handled), so the latest earlier match is the one.
  std::unordered_map<std::string, bag::record> candidates;
  std::vector<bag::record> unordered;
  std::uint64_t unresolved = 0;
  while (true) {
    auto n = r.next();
    if (!n) return n.err();
    if (!*n) break;
    auto& rec = **n;
    const auto& env = rec.env;
    if (bag::is_handled_marker(env)) {
      if (env.destination != actor) continue;
      s.dispatch_order = true;
      auto m = decode<msg::handled>(env.payload);
      if (!m)
        return make_error(errc::invalid_argument,
                          "dispatch marker at bag index " + std::to_string(rec.index) + ": " + m.err().what);
      auto it = candidates.find(bag::handled_key(*m));
      if (it == candidates.end()) {
        // Only a missing input matters (not, say, a lifecycle reply the core never sees).
        envelope named;
        named.sender = m->sender;
        named.seq = m->seq;
        named.type_id = m->type_id;
        named.kind = static_cast<route>(m->kind);
        named.destination = m->destination;
        named.correlation = m->correlation;
        if (core.accepts(named, actor)) ++unresolved;
        continue;
      }
      if (core.accepts(it->second.env, actor)) s.inputs.push_back(it->second);
      continue;
    }
    const bool out = core.produces(env, actor);
    if (core.accepts(env, actor)) {
      candidates[bag::handled_key(env)] = rec;
      unordered.push_back(rec);
    }
    if (out) s.expected.push_back(std::move(rec));
  }
  if (!s.dispatch_order)
    s.inputs = std::move(unordered);
  else if (unresolved)
    return make_error(errc::invalid_argument,
                      std::to_string(unresolved) + " dispatch marker(s) of '" + actor +
                          "' point at messages the bag does not hold (dropped, or filtered out of the recording)");
  return s;
}

replay_session::replay_session(replay_script script, std::unique_ptr<replayable_core> core)
    : script_(std::move(script)), core_(std::move(core)) {}

bool replay_session::step() {
  if (done()) return false;
  const auto& in = script_.inputs[next_input_++];
  ++outcome_.inputs;
  last_ = core_->feed(in.env);
  for (auto& out : last_) {
    if (next_expected_ >= script_.expected.size()) {
      outcome_.first = divergence{outcome_.outputs, in.index, std::nullopt, out};
      return false;
    }
    const auto& exp = script_.expected[next_expected_].env;
    if (!same_output(exp, out)) {
      outcome_.first = divergence{outcome_.outputs, in.index, exp, out};
      return false;
    }
    ++next_expected_;
    ++outcome_.outputs;
  }
  return !done();
}

const replay_outcome& replay_session::finish() {
  while (step()) {
  }
  if (!outcome_.first && next_expected_ < script_.expected.size())
    outcome_.first = divergence{outcome_.outputs, script_.inputs.empty() ? 0 : script_.inputs.back().index,
                                script_.expected[next_expected_].env, std::nullopt};
  return outcome_;
}

result<replay_outcome> replay(const std::string& bag_path, const std::string& actor, const std::string& core_name,
                              nlohmann::json options) {
  auto r = bag::reader::open(bag_path);
  if (!r) return r.err();
  auto params = recorded_parameters(**r, actor);
  if (!params) return params.err();
  replay_params p{actor, &(*r)->head(), std::move(options), std::move(*params)};
  auto core = replayable_core_registry::global().make(core_name, p);
  if (!core) return core.err();
  auto script = load_script(**r, actor, **core);
  if (!script) return script.err();
  replay_session s(std::move(*script), std::move(*core));
  return s.finish();
}

}  // namespace gfdit
