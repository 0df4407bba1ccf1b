#pragma once
// Where each process instance of a graph listens, and where its peers reach it.
// - ipc:   one host (`gfdit launch`): ipc://DIR/<node>.sock, DIR a per-run temporary folder.
// - tcp:   several hosts (`gfdit node`): tcp://<host>:<port>, port = the process's `port`
//          (+ index) or the graph's port_base + the instance's position in the file.
//          A process binds the address its `bind:` names, else its `host:` (resolved to an
//          address), never all interfaces unless the file says 0.0.0.0.
// - slurm: as tcp, but the host of instance k is the node that runs Slurm task k
//          (SLURM_NODELIST, SLURM_TASKS_PER_NODE; block distribution, as srun's default).
#include <map>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "launch/lib/launch_file.hpp"

namespace gfdit::launch {

enum class wiring { ipc, tcp, slurm };

struct endpoint_plan {
  std::string node;
  std::string bind;     // what this instance's bus binds
  std::string connect;  // what its peers connect to
  std::string control;  // its control endpoint (ipc wiring only; else empty)
};

// One plan per instance, in the graph's order. `ipc_dir` is used by ipc wiring only.
result<std::vector<endpoint_plan>> plan_endpoints(const graph_spec& g, wiring w, const std::string& ipc_dir = {});

// "gpu[01-03,07],cpu5" -> gpu01 gpu02 gpu03 gpu07 cpu5.
result<std::vector<std::string>> expand_nodelist(const std::string& list);
// "4(x2),2" -> 4 4 2.
result<std::vector<int>> expand_tasks_per_node(const std::string& spec);
// The host of each Slurm task 0..ntasks-1, from the environment (or the given values).
result<std::vector<std::string>> slurm_task_hosts(const std::string& nodelist, const std::string& tasks_per_node,
                                                  int ntasks);

// A host name or address -> a numeric IPv4/IPv6 address ZeroMQ can bind.
result<std::string> resolve_address(const std::string& host);

}  // namespace gfdit::launch
