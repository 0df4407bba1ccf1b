#include "launch/lib/launch_file.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <regex>
#include <set>

#include <yaml-cpp/yaml.h>

#include "actors/runtime/plugin_loader.hpp"
#include "actors/runtime/registry.hpp"
#include "common/text.hpp"
#include "launch/lib/probe.hpp"

namespace gfdit::launch {
namespace fs = std::filesystem;

std::string mark::str() const { return file + ":" + std::to_string(line) + ":" + std::to_string(column); }

const instance_spec* graph_spec::find(const std::string& process, int index) const {
  for (const auto& i : instances)
    if (i.process == process && i.index == index) return &i;
  return nullptr;
}

const instance_spec* graph_spec::find_node(const std::string& node) const {
  for (const auto& i : instances)
    if (i.node == node) return &i;
  return nullptr;
}

namespace {

// A path as the user will recognise it: relative to the working directory when below it.
std::string display_path(const fs::path& abs) {
  std::error_code ec;
  const fs::path rel = fs::relative(abs, fs::current_path(ec), ec);
  if (!ec && !rel.empty() && rel.native().rfind("..", 0) != 0) return rel.string();
  return abs.string();
}

bool valid_name(const std::string& s) {
  static const std::regex re("[A-Za-z0-9_][A-Za-z0-9_.\\-]*");
  return std::regex_match(s, re);
}

// YAML 1.2 core schema for plain scalars; quoted scalars are always strings.
nlohmann::json scalar_json(const YAML::Node& n, const std::string& text) {
  if (n.Tag() == "!") return text;
  static const std::regex int_re("[-+]?[0-9]+");
  static const std::regex real_re("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  if (std::regex_match(text, int_re)) {
    std::int64_t v = 0;
    const char* b = text.data() + (text[0] == '+' ? 1 : 0);
    auto [p, ec] = std::from_chars(b, text.data() + text.size(), v);
    if (ec == std::errc() && p == text.data() + text.size()) return v;
  }
  if (std::regex_match(text, real_re)) return std::strtod(text.c_str(), nullptr);
  return text;
}

// What a launch file may ask for: beyond these it is a mistake or an attack, refused at once
// with file:line (a 100,000-replica graph or an alias bomb hung `gfdit check` for minutes).
namespace limits {
constexpr std::int64_t max_replicas = 1024;
constexpr std::size_t max_include_depth = 16;
constexpr std::uintmax_t max_file_bytes = 1u << 20;
constexpr std::size_t max_values = 100000;   // parameter values built, aliases expanded
constexpr std::size_t max_value_depth = 64;  // nesting of a value's lists and maps
}  // namespace limits

// A process of only these is not essential by default: a serving worker's loss is survivable
// (the scheduler re-runs its tasks on the others). By name: the launcher links no actor.
constexpr std::string_view survivable_actor_type = "gfdit.worker";

class loader {
 public:
  explicit loader(const std::vector<std::string>& overrides) {
    for (const auto& o : overrides) {
      const auto p = o.find(":=");
      if (p == std::string::npos || p == 0) {
        fail({"command line", 0, 0}, "argument '" + o + "' is not NAME:=VALUE");
        continue;
      }
      cmdline_[o.substr(0, p)] = o.substr(p + 2);
    }
  }

  result<graph_spec> run(const std::string& path) {
    std::error_code ec;
    const fs::path abs = fs::weakly_canonical(fs::absolute(path, ec), ec);
    g_.file = abs.string();
    load_file(abs, {"command line", 0, 0});
    for (const auto& [k, v] : cmdline_)
      if (!used_.count(k)) {
        std::vector<std::string> names(declared_.begin(), declared_.end());
        fail({"command line", 0, 0},
             "unknown argument '" + k + "' (the graph declares: " + (names.empty() ? "none" : join(names)) + ")");
      }
    if (errors_.empty() && g_.name.empty()) fail({display_path(abs), 1, 1}, "missing key 'graph' (the graph's name)");
    if (!errors_.empty()) return make_error(errc::invalid_argument, join(errors_, "\n"));
    return std::move(g_);
  }

 private:
  struct scope {
    std::string file;  // as displayed
    fs::path dir;
    std::optional<int> index;
  };

  void fail(const mark& m, const std::string& what) {
    std::string line = m.line > 0 ? m.str() + ": " + what : m.file + ": " + what;
    if (seen_.insert(line).second) errors_.push_back(std::move(line));
  }

  static mark mk(const YAML::Node& n, const scope& s) {
    const auto m = n.Mark();
    if (m.is_null()) return {s.file, 0, 0};
    return {s.file, m.line + 1, m.column + 1};
  }

  // $(arg NAME), $(env NAME), $(index), $(dirname).
  std::optional<std::string> subst(const std::string& text, const scope& s, const mark& m) {
    // The file is UTF-8 (checked on reading), but a quoted escape such as "\xA0" gives yaml-cpp a
    // byte that is not, which later made the graph's JSON throw (fuzz_launch_file).
    if (utf8_valid_prefix(text) < text.size()) {
      fail(m, "not UTF-8 text (an escape such as \\xA0 in a quoted string?)");
      return std::nullopt;
    }
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
      const auto open = text.find("$(", i);
      if (open == std::string::npos) {
        out += text.substr(i);
        break;
      }
      out += text.substr(i, open - i);
      const auto close = text.find(')', open);
      if (close == std::string::npos) {
        fail(m, "unterminated '$(' in '" + text + "'");
        return std::nullopt;
      }
      std::string body = text.substr(open + 2, close - open - 2);
      std::string verb = body.substr(0, body.find(' '));
      std::string arg = body.size() > verb.size() ? body.substr(verb.size() + 1) : "";
      arg.erase(0, arg.find_first_not_of(' '));
      if (verb == "arg") {
        auto it = g_.args.find(arg);
        if (it == g_.args.end()) {
          fail(m, "$(arg " + arg + "): no argument '" + arg + "' is declared (under 'args:')");
          return std::nullopt;
        }
        out += it->second;
      } else if (verb == "env") {
        const std::string_view v = std::getenv(arg.c_str()) ? std::getenv(arg.c_str()) : "";
        if (utf8_valid_prefix(v) < v.size()) {
          fail(m, "$(env " + arg + "): the variable's value is not UTF-8 text");
          return std::nullopt;
        }
        out += v;
      } else if (verb == "index") {
        if (!s.index) {
          fail(m, "$(index) is only defined inside a process");
          return std::nullopt;
        }
        out += std::to_string(*s.index);
      } else if (verb == "dirname") {
        out += s.dir.string();
      } else {
        fail(m, "unknown substitution '$(" + body + ")' (known: arg, env, index, dirname)");
        return std::nullopt;
      }
      i = close + 1;
    }
    return out;
  }

  std::optional<std::string> text(const YAML::Node& n, const scope& s, const std::string& what) {
    if (!n.IsScalar()) {
      fail(mk(n, s), "'" + what + "' must be a scalar");
      return std::nullopt;
    }
    return subst(n.Scalar(), s, mk(n, s));
  }

  std::optional<nlohmann::json> value(const YAML::Node& n, const scope& s, const std::string& what) {
    // Aliases share nodes in YAML but are copied here: a few lines of anchors can stand for
    // billions of values. Counting what is built stops such a file at once.
    if (++value_nodes_ > limits::max_values) {
      if (value_nodes_ == limits::max_values + 1)
        fail(mk(n, s), "'" + what + "' expands to more than " + std::to_string(limits::max_values) +
                           " values (YAML aliases copied over and over?)");
      return std::nullopt;
    }
    if (n.IsScalar()) {
      auto t = subst(n.Scalar(), s, mk(n, s));
      if (!t) return std::nullopt;
      return scalar_json(n, *t);
    }
    if (n.IsNull()) return nlohmann::json(nullptr);
    // Recursion below: a value nested thousands deep overflowed the stack (fuzz_launch_file).
    struct deeper {
      std::size_t& d;
      explicit deeper(std::size_t& depth) : d(++depth) {}
      ~deeper() { --d; }
    } guard(value_depth_);
    if (value_depth_ > limits::max_value_depth) {
      fail(mk(n, s), "'" + what + "' nests more than " + std::to_string(limits::max_value_depth) + " levels deep");
      return std::nullopt;
    }
    if (n.IsSequence()) {
      auto arr = nlohmann::json::array();
      for (const auto& e : n) {
        auto v = value(e, s, what);
        if (!v) return std::nullopt;
        arr.push_back(*v);
      }
      return arr;
    }
    auto obj = nlohmann::json::object();
    for (const auto& kv : n) {
      const std::string& key = kv.first.Scalar();
      if (utf8_valid_prefix(key) < key.size()) {
        fail(mk(kv.first, s), "not UTF-8 text (an escape such as \\xA0 in a quoted key?)");
        return std::nullopt;
      }
      auto v = value(kv.second, s, what);
      if (!v) return std::nullopt;
      obj[key] = *v;
    }
    return obj;
  }

  std::optional<std::int64_t> integer(const YAML::Node& n, const scope& s, const std::string& what, std::int64_t min) {
    auto t = text(n, s, what);
    if (!t) return std::nullopt;
    auto j = scalar_json(n, *t);
    if (!j.is_number_integer()) {
      fail(mk(n, s), "'" + what + "' must be an integer, got '" + *t + "'");
      return std::nullopt;
    }
    if (j.get<std::int64_t>() < min) {
      fail(mk(n, s), "'" + what + "' must be >= " + std::to_string(min) + ", got " + *t);
      return std::nullopt;
    }
    return j.get<std::int64_t>();
  }

  std::optional<bool> boolean(const YAML::Node& n, const scope& s, const std::string& what) {
    auto t = text(n, s, what);
    if (!t) return std::nullopt;
    auto j = scalar_json(n, *t);
    if (!j.is_boolean()) {
      fail(mk(n, s), "'" + what + "' must be true or false, got '" + *t + "'");
      return std::nullopt;
    }
    return j.get<bool>();
  }

  bool is_map(const YAML::Node& n, const scope& s, const std::string& what) {
    if (n.IsMap()) return true;
    fail(mk(n, s), "'" + what + "' must be a map");
    return false;
  }

  // Reports every key not in `allowed`; returns false if there was one.
  bool check_keys(const YAML::Node& n, const scope& s, const std::string& where,
                  const std::vector<std::string>& allowed) {
    bool ok = true;
    for (const auto& kv : n) {
      const std::string k = kv.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      fail(mk(kv.first, s), "unknown key '" + k + "' in " + where + " (expected one of: " + join(allowed) + ")");
      ok = false;
    }
    return ok;
  }

  void load_file(const fs::path& abs, const mark& from) {
    const std::string key = abs.string();
    if (std::find(stack_.begin(), stack_.end(), key) != stack_.end()) {
      std::string chain;
      bool on = false;
      for (const auto& f : stack_) {
        if (f == key) on = true;
        if (on) chain += display_path(f) + " -> ";
      }
      fail(from, "cyclic include: " + chain + display_path(abs));
      return;
    }
    std::error_code ec;
    if (!fs::is_regular_file(abs, ec)) {
      fail(from, "cannot read launch file '" + display_path(abs) + "'");
      return;
    }
    if (stack_.size() >= limits::max_include_depth) {
      fail(from, "includes nest more than " + std::to_string(limits::max_include_depth) + " files deep at '" +
                     display_path(abs) + "'");
      return;
    }
    if (const auto size = fs::file_size(abs, ec); !ec && size > limits::max_file_bytes) {
      fail(from, "launch file '" + display_path(abs) + "' has " + std::to_string(size) + " bytes (at most " +
                     std::to_string(limits::max_file_bytes) + ")");
      return;
    }
    const scope s{display_path(abs), abs.parent_path(), std::nullopt};
    // YAML is Unicode text; yaml-cpp does not check, and bytes that are not UTF-8 made every
    // later JSON dump of a value throw (fuzz_launch_file found it through to_flat_yaml).
    auto bytes = read_text(abs, limits::max_file_bytes);
    if (!bytes) {
      fail(from, "cannot read launch file '" + s.file + "': " + bytes.err().what);
      return;
    }
    if (const auto ok = utf8_valid_prefix(*bytes); ok < bytes->size()) {
      const auto line = std::count(bytes->begin(), bytes->begin() + static_cast<std::ptrdiff_t>(ok), '\n');
      const auto nl = bytes->rfind('\n', ok);  // the byte at `ok` is no newline
      const auto column = nl == std::string::npos ? ok : ok - nl - 1;
      fail({s.file, static_cast<int>(line) + 1, static_cast<int>(column) + 1}, "not UTF-8 text");
      return;
    }
    YAML::Node root;
    try {
      root = YAML::Load(*bytes);
    } catch (const YAML::ParserException& e) {
      fail({s.file, e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg);
      return;
    } catch (const std::exception& e) {
      fail(from, "cannot read launch file '" + s.file + "': " + e.what());
      return;
    }
    g_.files.push_back(key);
    if (root.IsNull()) return;
    if (!root.IsMap()) {
      fail(mk(root, s), "a launch file must be a map (graph, args, processes, ...)");
      return;
    }
    stack_.push_back(key);
    check_keys(root, s, "the launch file",
               {"graph", "args", "parameters", "include", "plugins", "port_base", "metrics", "security", "processes"});
    if (root["args"]) load_args(root["args"], s);
    if (const auto inc = root["include"]) {
      std::vector<YAML::Node> items;
      if (inc.IsSequence())
        for (const auto& e : inc) items.push_back(e);
      else
        items.push_back(inc);
      for (const auto& e : items) {
        auto p = text(e, s, "include");
        if (!p) continue;
        fs::path target = fs::path(*p).is_absolute() ? fs::path(*p) : s.dir / *p;
        load_file(fs::weakly_canonical(target, ec), mk(e, s));
      }
    }
    // The file nearest the top wins the graph name and each global parameter (its includes were
    // read first, so "first set" would have let an included file win); siblings keep first-set.
    const std::size_t depth = stack_.size();
    if (const auto n = root["graph"]) {
      if (auto t = text(n, s, "graph"); t && (g_.name.empty() || depth < name_depth_)) {
        if (!valid_name(*t)) fail(mk(n, s), "graph name '" + *t + "' may hold only letters, digits, '_', '-', '.'");
        g_.name = *t;
        name_depth_ = depth;
      }
    }
    if (const auto n = root["port_base"])
      if (auto v = integer(n, s, "port_base", 1); v) {
        if (*v > 65535) fail(mk(n, s), "'port_base' must be a TCP port (< 65536)");
        g_.port_base = static_cast<int>(*v);
      }
    // metrics: {port_base: N, bind: HOST}: instance k serves Prometheus text on HOST:N+k.
    if (const auto n = root["metrics"];
        n && is_map(n, s, "metrics") && check_keys(n, s, "metrics", {"port_base", "bind"})) {
      if (const auto p = n["port_base"])
        if (auto v = integer(p, s, "metrics.port_base", 0); v) {  // 0: off
          if (*v > 65535) fail(mk(p, s), "'metrics.port_base' must be a TCP port (< 65536)");
          g_.metrics_port_base = static_cast<int>(*v);
        }
      if (const auto b = n["bind"])
        if (auto t = text(b, s, "metrics.bind")) g_.metrics_bind = *t;
    }
    // security: {keys: DIR, insecure: BOOL}: the bus keyed with DIR's pairs (gfdit keys make);
    // insecure allows tcp beyond loopback without keys. A later file (the including one) wins.
    if (const auto n = root["security"];
        n && is_map(n, s, "security") && check_keys(n, s, "security", {"keys", "insecure"})) {
      g_.security.at = mk(n, s);
      if (const auto k = n["keys"])
        if (auto t = text(k, s, "security.keys")) {
          g_.security.keys =
              t->empty() ? ""
                         : fs::weakly_canonical(fs::path(*t).is_absolute() ? fs::path(*t) : s.dir / *t, ec).string();
          g_.security.keys_at = mk(k, s);
        }
      if (const auto i = n["insecure"])
        if (auto v = boolean(i, s, "security.insecure")) g_.security.insecure = *v;
    }
    if (const auto n = root["parameters"]; n && is_map(n, s, "parameters")) {
      for (const auto& kv : n) {
        const std::string k = kv.first.Scalar();
        if (auto v = value(kv.second, s, k)) {
          auto d = parameter_depth_.find(k);
          if (!g_.parameters.contains(k) || (d != parameter_depth_.end() && depth < d->second)) {
            g_.parameters[k] = *v;
            g_.parameter_marks[k] = mk(kv.second, s);
            parameter_depth_[k] = depth;
          }
        }
      }
    }
    if (const auto n = root["plugins"]) {
      std::vector<YAML::Node> items;
      if (n.IsSequence())
        for (const auto& e : n) items.push_back(e);
      else
        items.push_back(n);
      for (const auto& e : items) {
        auto p = text(e, s, "plugins");
        if (!p) continue;
        fs::path target = fs::path(*p).is_absolute() ? fs::path(*p) : s.dir / *p;
        g_.plugins.push_back(fs::weakly_canonical(target, ec).string());
        g_.plugin_marks.push_back(mk(e, s));
      }
    }
    if (const auto n = root["processes"]) {
      if (!n.IsSequence())
        fail(mk(n, s), "'processes' must be a list");
      else
        for (const auto& p : n) load_process(p, s);
    }
    stack_.pop_back();
  }

  void load_args(const YAML::Node& n, const scope& s) {
    if (!is_map(n, s, "args")) return;
    for (const auto& kv : n) {
      const std::string name = kv.first.Scalar();
      const mark m = mk(kv.first, s);
      if (!valid_name(name)) fail(m, "argument name '" + name + "' may hold only letters, digits, '_', '-', '.'");
      std::optional<std::string> def;
      const YAML::Node& v = kv.second;
      if (v.IsMap()) {
        check_keys(v, s, "argument '" + name + "'", {"default", "description"});
        if (v["default"] && !v["default"].IsNull()) def = text(v["default"], s, "default");
      } else if (v.IsScalar()) {
        def = text(v, s, name);
      } else if (!v.IsNull()) {
        fail(mk(v, s), "argument '" + name + "' must be a scalar default or {default, description}");
        continue;
      }
      declared_.insert(name);
      if (g_.args.count(name)) continue;  // the including file (or the command line) won
      if (auto c = cmdline_.find(name); c != cmdline_.end()) {
        used_.insert(name);
        g_.args[name] = c->second;
      } else if (def) {
        g_.args[name] = *def;
      } else {
        fail(m, "argument '" + name + "' has no default: pass " + name + ":=VALUE");
      }
    }
  }

  void load_process(const YAML::Node& p, const scope& file_scope) {
    if (!p.IsMap()) {
      fail(mk(p, file_scope), "a process must be a map (name, host, actors, ...)");
      return;
    }
    const bool keys_ok = check_keys(p, file_scope, "process",
                                    {"name", "host", "bind", "port", "env", "replicas", "restart", "exit_on_done",
                                     "essential", "threads", "actors"});
    if (!p["name"]) {
      fail(mk(p, file_scope), "process without 'name'");
      return;
    }
    auto name = text(p["name"], file_scope, "name");
    if (!name) return;
    if (!valid_name(*name)) {
      fail(mk(p["name"], file_scope), "process name '" + *name + "' may hold only letters, digits, '_', '-', '.'");
      return;
    }
    if (auto it = process_marks_.find(*name); it != process_marks_.end()) {
      fail(mk(p["name"], file_scope), "duplicate process name '" + *name + "' (first at " + it->second.str() + ")");
      return;
    }
    process_marks_[*name] = mk(p["name"], file_scope);
    int replicas = 1;
    if (p["replicas"]) {
      auto r = integer(p["replicas"], file_scope, "replicas", 1);
      if (!r) return;
      if (*r > limits::max_replicas) {
        fail(mk(p["replicas"], file_scope),
             "'replicas' must be at most " + std::to_string(limits::max_replicas) + ", got " + std::to_string(*r));
        return;
      }
      replicas = static_cast<int>(*r);
    }
    if (!keys_ok) return;
    for (int i = 0; i < replicas; ++i) {
      scope s = file_scope;
      s.index = i;
      instance_spec inst;
      inst.process = *name;
      inst.index = i;
      inst.replicas = replicas;
      inst.node = replicas > 1 ? *name + "-" + std::to_string(i) : *name;
      inst.at = mk(p, s);
      if (p["host"])
        if (auto t = text(p["host"], s, "host")) inst.host = *t;
      if (p["bind"])
        if (auto t = text(p["bind"], s, "bind")) inst.bind = *t;
      if (p["port"])
        if (auto v = integer(p["port"], s, "port", 1)) inst.port = static_cast<int>(*v) + i;
      if (p["threads"])
        if (auto v = integer(p["threads"], s, "threads", 0)) inst.threads = static_cast<int>(*v);
      if (p["exit_on_done"])
        if (auto v = boolean(p["exit_on_done"], s, "exit_on_done")) inst.exit_on_done = *v;
      if (const auto e = p["env"]; e && is_map(e, s, "env"))
        for (const auto& kv : e)
          if (auto t = text(kv.second, s, kv.first.Scalar())) inst.env[kv.first.Scalar()] = *t;
      if (const auto r = p["restart"]) load_restart(r, s, inst.restart);
      if (const auto a = p["actors"]) {
        if (!a.IsSequence())
          fail(mk(a, s), "'actors' must be a list");
        else
          for (const auto& e : a) load_actor(e, s, inst);
      }
      inst.essential = !std::all_of(inst.actors.begin(), inst.actors.end(),
                                    [](const actor_spec& a) { return a.type == survivable_actor_type; });
      if (p["essential"])
        if (auto v = boolean(p["essential"], s, "essential")) inst.essential = *v;
      if (auto it = node_marks_.find(inst.node); it != node_marks_.end()) {
        fail(inst.at, "process instance '" + inst.node + "' clashes with the process at " + it->second.str());
        continue;
      }
      node_marks_[inst.node] = inst.at;
      g_.instances.push_back(std::move(inst));
    }
  }

  void load_restart(const YAML::Node& r, const scope& s, restart_policy& out) {
    auto set_policy = [&](const YAML::Node& n) {
      auto t = text(n, s, "policy");
      if (!t) return;
      if (*t == "never")
        out.policy = restart_policy::kind::never;
      else if (*t == "on-failure" || *t == "on_failure")
        out.policy = restart_policy::kind::on_failure;
      else
        fail(mk(n, s), "restart policy must be 'never' or 'on-failure', got '" + *t + "'");
    };
    if (r.IsScalar()) return set_policy(r);
    if (!is_map(r, s, "restart")) return;
    check_keys(r, s, "restart", {"policy", "max", "backoff_ms"});
    if (r["policy"]) set_policy(r["policy"]);
    if (r["max"])
      if (auto v = integer(r["max"], s, "max", 0)) out.max = static_cast<int>(*v);
    if (r["backoff_ms"])
      if (auto v = integer(r["backoff_ms"], s, "backoff_ms", 0)) out.backoff_ms = static_cast<int>(*v);
  }

  void load_actor(const YAML::Node& a, const scope& s, instance_spec& inst) {
    if (!a.IsMap()) {
      fail(mk(a, s), "an actor must be a map (type, name, parameters, remaps)");
      return;
    }
    if (!check_keys(a, s, "actor", {"type", "name", "parameters", "remaps"})) return;
    actor_spec spec;
    spec.at = mk(a, s);
    if (!a["type"]) return fail(spec.at, "actor without 'type'");
    if (!a["name"]) return fail(spec.at, "actor without 'name'");
    auto type = text(a["type"], s, "type");
    auto name = text(a["name"], s, "name");
    if (!type || !name) return;
    spec.type = *type;
    spec.name = *name;
    spec.type_at = mk(a["type"], s);
    spec.name_at = mk(a["name"], s);
    if (spec.name.empty() || spec.name[0] == '$' || spec.name.find(':') != std::string::npos)
      return fail(spec.name_at, "actor name '" + spec.name + "' must be non-empty, without ':' or a leading '$'");
    if (auto it = actor_marks_.find(spec.name); it != actor_marks_.end())
      return fail(spec.name_at, "duplicate actor name '" + spec.name + "' (first at " + it->second.str() + ")");
    actor_marks_[spec.name] = spec.name_at;
    if (const auto p = a["parameters"]; p && is_map(p, s, "parameters"))
      for (const auto& kv : p) {
        const std::string k = kv.first.Scalar();
        if (auto v = value(kv.second, s, k)) {
          spec.params[k] = *v;
          spec.param_marks[k] = mk(kv.second, s);
        }
      }
    if (const auto r = a["remaps"]; r && is_map(r, s, "remaps"))
      for (const auto& kv : r) {
        auto from = subst(kv.first.Scalar(), s, mk(kv.first, s));
        auto to = text(kv.second, s, "remap");
        if (from && to) spec.remaps[*from] = *to;
      }
    inst.actors.push_back(std::move(spec));
  }

  graph_spec g_;
  std::map<std::string, std::string> cmdline_;
  std::set<std::string> used_;
  std::set<std::string> declared_;
  std::vector<std::string> stack_;
  std::size_t value_nodes_ = 0;
  std::size_t value_depth_ = 0;                         // lists and maps open in value()
  std::size_t name_depth_ = 0;                          // include depth of the file that named the graph
  std::map<std::string, std::size_t> parameter_depth_;  // ... and of each global parameter
  std::vector<std::string> errors_;
  std::set<std::string> seen_;
  std::map<std::string, mark> process_marks_, node_marks_, actor_marks_;
};

bool matches(const std::string& declared, const nlohmann::json& v) {
  if (declared == "bool") return v.is_boolean();
  if (declared == "int") return v.is_number_integer();
  if (declared == "double") return v.is_number();
  if (declared == "string") return v.is_string();
  return true;
}

std::string shape(const nlohmann::json& v) {
  if (v.is_boolean()) return "bool " + v.dump();
  if (v.is_number_integer()) return "int " + v.dump();
  if (v.is_number()) return "double " + v.dump();
  if (v.is_string()) return "string " + v.dump();
  return std::string(v.type_name());
}

}  // namespace

result<graph_spec> load(const std::string& path, const std::vector<std::string>& overrides) {
  return loader(overrides).run(path);
}

result<void> load_plugins(const graph_spec& g) {
  for (std::size_t i = 0; i < g.plugins.size(); ++i) {
    auto p = load_plugin(g.plugins[i]);
    if (!p) return make_error(p.err().code, g.plugin_marks[i].str() + ": " + p.err().what);
  }
  auto env = load_plugins_from_env();
  if (!env) return env.err();
  return {};
}

result<void> validate(graph_spec& g, const std::string& only_node) {
  std::vector<std::string> errors;
  std::set<std::string> seen;
  auto fail = [&](const mark& m, const std::string& what) {
    std::string line = m.str() + ": " + what;
    if (seen.insert(line).second) errors.push_back(std::move(line));
  };
  for (auto& inst : g.instances) {
    for (auto& a : inst.actors) {
      if (!actor_registry::global().has(a.type)) {
        std::vector<std::string> known;
        for (const auto& t : actor_registry::global().list()) known.push_back(t.name);
        fail(a.type_at, "unknown actor type '" + a.type + "' (known: " + join(known) +
                            "; more come from 'plugins:' or GFDIT_PLUGIN_PATH)");
        continue;
      }
      if (!only_node.empty() && inst.node != only_node) continue;
      const auto decl = declared_parameters(a.type);
      if (!decl) {
        // The type cannot be probed: at least every value must be one a parameter can hold.
        for (const auto& [k, v] : a.params.items())
          if (!v.is_primitive() || v.is_null())
            fail(a.param_marks[k], "parameter '" + k + "' of actor '" + a.name +
                                       "' must be a bool, int, double or string, got " + v.type_name());
        continue;
      }
      bool ok = true;
      for (const auto& [k, v] : a.params.items()) {
        if (!decl->contains(k)) {
          std::vector<std::string> names;
          for (const auto& [n, _] : decl->items()) names.push_back(n);
          fail(a.param_marks[k], "actor '" + a.name + "' (type " + a.type + ") declares no parameter '" + k +
                                     "' (declared: " + (names.empty() ? "none" : join(names)) + ")");
          ok = false;
          continue;
        }
        const std::string want = (*decl)[k]["type"].get<std::string>();
        if (!matches(want, v)) {
          fail(a.param_marks[k], "parameter '" + k + "' of actor '" + a.name + "' must be " + want + " (declared by " +
                                     a.type + "), got " + shape(v));
          ok = false;
        }
      }
      if (!ok) continue;
      nlohmann::json merged = a.params;
      for (const auto& [k, v] : g.parameters.items())
        if (decl->contains(k) && !merged.contains(k)) {
          if (!matches((*decl)[k]["type"].get<std::string>(), v)) {
            fail(g.parameter_marks[k], "global parameter '" + k + "' must be " + (*decl)[k]["type"].get<std::string>() +
                                           " for actor '" + a.name + "' (type " + a.type + "), got " + shape(v));
            ok = false;
            continue;
          }
          merged[k] = v;
        }
      if (!ok) continue;
      if (auto r = probe_configure(a.type, merged); !r) {
        // Name the parameter the runtime complained about when it says which.
        mark at = a.at;
        for (const auto& [k, m] : a.param_marks)
          if (r.err().what.find("'" + k + "'") != std::string::npos) at = m;
        fail(at, "actor '" + a.name + "' (type " + a.type + "): " + r.err().what);
        continue;
      }
      a.params = std::move(merged);
    }
  }
  if (!errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += (all.empty() ? "" : "\n") + e;
    return make_error(errc::invalid_argument, all);
  }
  return {};
}

result<std::string> to_flat_yaml(const graph_spec& g) {
  // JSON is YAML: quoted strings stay strings, numbers and booleans keep their type on reload.
  using ojson = nlohmann::ordered_json;
  std::string bad;
  const std::function<void(const nlohmann::json&, const std::string&)> scan = [&](const nlohmann::json& v,
                                                                                  const std::string& where) {
    if (!bad.empty()) return;
    if (v.is_string() && v.get<std::string>().find("$(") != std::string::npos) bad = where;
    if (v.is_structured())
      for (const auto& [k, e] : v.items()) {
        if (v.is_object() && k.find("$(") != std::string::npos) bad = where + "." + k;
        scan(e, where + "." + k);
      }
  };
  ojson out;
  out["graph"] = g.name;
  out["port_base"] = g.port_base;
  if (g.metrics_port_base > 0) out["metrics"] = {{"port_base", g.metrics_port_base}, {"bind", g.metrics_bind}};
  if (!g.plugins.empty()) out["plugins"] = g.plugins;
  if (!g.security.keys.empty() || g.security.insecure)
    out["security"] = {{"keys", g.security.keys}, {"insecure", g.security.insecure}};
  scan(g.security.keys, "security.keys");
  if (!g.parameters.empty())
    out["parameters"] = ojson::parse(g.parameters.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  scan(g.parameters, "parameters");
  auto processes = ojson::array();
  for (const auto& i : g.instances) {
    ojson p;
    p["name"] = i.node;
    if (!i.host.empty()) p["host"] = i.host;
    if (!i.bind.empty()) p["bind"] = i.bind;
    if (i.port >= 0) p["port"] = i.port;
    if (i.threads > 0) p["threads"] = i.threads;
    if (i.exit_on_done) p["exit_on_done"] = true;
    p["essential"] = i.essential;
    if (!i.env.empty()) p["env"] = i.env;
    p["restart"] = {{"policy", i.restart.policy == restart_policy::kind::never ? "never" : "on-failure"},
                    {"max", i.restart.max},
                    {"backoff_ms", i.restart.backoff_ms}};
    auto actors = ojson::array();
    for (const auto& a : i.actors) {
      ojson e = {{"type", a.type},
                 {"name", a.name},
                 {"parameters", ojson::parse(a.params.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))}};
      if (!a.remaps.empty()) e["remaps"] = a.remaps;
      scan(nlohmann::json{{"type", a.type}, {"name", a.name}, {"remaps", a.remaps}, {"parameters", a.params}},
           i.node + "." + a.name);
      actors.push_back(std::move(e));
    }
    p["actors"] = std::move(actors);
    scan(nlohmann::json{{"host", i.host}, {"bind", i.bind}, {"env", i.env}}, i.node);
    processes.push_back(std::move(p));
  }
  out["processes"] = std::move(processes);
  if (!bad.empty())
    return make_error(errc::invalid_argument, "graph '" + g.name + "': the value at " + bad +
                                                  " holds '$(', which a launch file reads as a substitution");
  // Whatever a value holds, the flat file is UTF-8: a byte that is not becomes U+FFFD (a launch
  // file without one non-ASCII byte still made one, fuzz_launch_file in CI; its source is not yet
  // found).
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

result<graph_spec> load_and_validate(const std::string& path, const std::vector<std::string>& overrides,
                                     const std::string& only_node) {
  auto g = load(path, overrides);
  if (!g) return g;
  if (auto r = load_plugins(*g); !r) return r.err();
  if (auto r = validate(*g, only_node); !r) return r.err();
  return g;
}

}  // namespace gfdit::launch
