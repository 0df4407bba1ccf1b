#pragma once
// The library behind the `gfdit` subcommands; each returns the process exit status.
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace gfdit::launch {

struct launch_options {
  std::string file;
  std::vector<std::string> args;              // name:=value
  std::string control = "tcp://127.0.0.1:0";  // the launcher's control endpoint
  int stop_timeout_ms = 3500;                 // SIGTERM -> SIGKILL (the whole stop stays < 5 s)
  std::string self;                           // the gfdit executable (default /proc/self/exe)
};
// `gfdit launch`: every process of the graph on this host, as child processes.
int run_launch(const launch_options& opt);

struct node_run_options {
  std::string file;
  std::vector<std::string> args;
  std::string process;  // empty with slurm: the instance is SLURM_PROCID
  int index = -1;
  std::string ipc_dir;  // set by `gfdit launch`: ipc wiring in this folder
  bool slurm = false;
  std::string control;  // a control endpoint to serve (ipc wiring picks one by itself)
  int peer_timeout_ms = 30000;
};
// `gfdit node`: one process of a graph. Once its actors are added, before start(), the node
// extensions registered by the libraries in the process run on it (the recorder's tap:
// actors/runtime/node_extension.hpp).
int run_node(const node_run_options& opt);

// `gfdit check`: load and validate, print the expanded graph.
int run_check(const std::string& file, const std::vector<std::string>& args);

// Introspection against a running launcher. `control` empty: GFDIT_CONTROL, else the newest
// live launcher of this user.
int actor_types(const std::vector<std::string>& plugins);
int actor_list(const std::string& control, bool json);
int topic_list(const std::string& control, bool json);
int topic_echo(const std::string& control, const std::string& topic, bool json, int count, double timeout_s);
int topic_hz(const std::string& control, const std::string& topic, double window_s, double duration_s);
int param_get(const std::string& control, const std::string& actor, const std::string& name);
int param_set(const std::string& control, const std::string& actor, const std::string& name, const std::string& value);
int msg_show(const std::string& type);
// `gfdit top`: the scheduler's live view (workers, groups, requests with progress bars), redrawn
// at each snapshot; `once`: print the first frame and exit (scripts, tests); exit 1 when no
// snapshot came within `timeout_s`.
int top(const std::string& control, bool once, double timeout_s);
int msg_list();

// Where this user's launchers announce themselves: /tmp/gfdit-<uid>/launch-<pid>.json
std::string runs_folder();
// runs_folder(), made if missing; an error when another user owns it or may write it.
result<std::string> private_runs_folder();
// Removes the announcements (and token files) of launchers and nodes that are gone.
void sweep_runs_folder();
// The token of the launcher serving `endpoint` (its announcement names a 0600 token file of
// this user), else the one in the file GFDIT_CONTROL_TOKEN names; empty when none is readable.
std::string control_token_for(const std::string& endpoint);
// A request to the launcher serving `endpoint`, with its token and, when its graph is keyed, over
// CURVE with the tool key (GFDIT_KEY, else the folder's operator.key; graph_keys.hpp).
result<nlohmann::json> ask_launcher(const std::string& endpoint, const nlohmann::json& request,
                                    std::chrono::milliseconds timeout);

// `gfdit keys make DIR NAME...`: a CurveZMQ pair per name (NAME.key 0600, NAME.pub);
// `graph_file` set: one per process instance of that graph plus "operator" (for the tools),
// keeping pairs that exist. `gfdit keys list DIR`: names and public keys.
int keys_make(const std::string& dir, const std::vector<std::string>& names, const std::string& graph_file,
              const std::vector<std::string>& args);
int keys_list(const std::string& dir);

}  // namespace gfdit::launch
