#pragma once
// A launch file (YAML) describes a graph: its processes, the actors each hosts, their
// parameters and topic remaps. Loading resolves arguments, includes and replicas, so what comes
// out is a flat list of process instances, each with fully substituted actors. Every error
// names file:line:column and what is wrong. See launch/README.md for the format.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace gfdit::launch {

// Where something was written; 1-based like compilers print it.
struct mark {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;  // "file:line:column"
};

struct restart_policy {
  enum class kind { never, on_failure };
  kind policy = kind::never;
  int max = 3;           // restarts after the first start
  int backoff_ms = 500;  // before the first restart; doubles each time, capped at 30 s
};

struct actor_spec {
  std::string type;
  std::string name;
  nlohmann::json params = nlohmann::json::object();
  std::map<std::string, mark> param_marks;
  std::map<std::string, std::string> remaps;  // as the actor names a topic -> as the graph does
  mark at, type_at, name_at;
};

// One running process: a process entry with `replicas: N` gives N instances.
struct instance_spec {
  std::string process;  // the entry's name
  int index = 0;        // 0..replicas-1
  int replicas = 1;
  std::string node;  // process name, or "name-index" when replicas > 1
  std::string host;  // address peers connect to (tcp wiring); empty: 127.0.0.1
  std::string bind;  // address this process binds (tcp wiring); empty: host
  int port = -1;     // explicit port (plus index); -1: port_base + ordinal
  int threads = 0;
  bool exit_on_done = false;
  // Whether the graph can go on without this process once its restart policy gives up. Unless
  // the file says, a process of only serving workers is not (the scheduler re-runs their work
  // elsewhere); any other (admission, scheduler, gateway, a custom actor) is.
  bool essential = true;
  restart_policy restart;
  std::map<std::string, std::string> env;
  std::vector<actor_spec> actors;
  mark at;
};

// `security:`: the keys the bus is keyed with, and whether tcp may leave loopback without them.
struct security_spec {
  std::string keys;  // the key folder, absolute (relative paths are to the file); empty: not keyed
  bool insecure = false;
  mark at, keys_at;
};

struct graph_spec {
  std::string name;
  std::string file;                                      // the top file, absolute
  std::vector<std::string> files;                        // every file read, includes too
  std::map<std::string, std::string> args;               // resolved values
  nlohmann::json parameters = nlohmann::json::object();  // global: for every actor declaring them
  std::map<std::string, mark> parameter_marks;
  std::vector<std::string> plugins;  // absolute paths
  std::vector<mark> plugin_marks;
  int port_base = 7600;
  int metrics_port_base = 0;  // > 0: instance k serves /metrics on metrics_bind:base+k
  std::string metrics_bind = "127.0.0.1";
  security_spec security;
  std::vector<instance_spec> instances;  // file order, replicas expanded

  const instance_spec* find(const std::string& process, int index) const;
  const instance_spec* find_node(const std::string& node) const;
};

// Reads a file and its includes; `overrides` are command-line `name:=value` pairs. Checks the
// structure (keys, types of fields, arguments, cyclic includes, duplicate names) but not actor
// types: call validate() once the plugins are loaded.
result<graph_spec> load(const std::string& path, const std::vector<std::string>& overrides);

// Checks every actor type against the registry and every parameter against what the actor
// declares (its on_configure is run against a recording context), merges global parameters
// into the actors that declare them. Errors are file:line:column lines, one per problem.
// The probe runs in a forked child per actor; with `only_node` set, only that instance's
// actors are probed (a node must not repeat the side effects of another process's actors,
// such as a recorder creating its file); the others get their types checked.
result<void> validate(graph_spec& g, const std::string& only_node = {});

// load_plugin() for each `plugins:` entry, then GFDIT_PLUGIN_PATH; errors name the mark.
result<void> load_plugins(const graph_spec& g);

// The loaded graph as one launch file with nothing left to substitute: every process instance
// becomes a process of its own, named after its node (replicas expanded), with the values as
// loaded. A tool that edits a loaded graph (`gfdit replay --replace`) writes this out and
// launches it. Fails when a value still holds "$(", which loading would read as a substitution.
result<std::string> to_flat_yaml(const graph_spec& g);

// load + load_plugins + validate.
result<graph_spec> load_and_validate(const std::string& path, const std::vector<std::string>& overrides,
                                     const std::string& only_node = {});

}  // namespace gfdit::launch
