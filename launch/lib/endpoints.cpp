#include "launch/lib/endpoints.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstdlib>

namespace gfdit::launch {
namespace {

std::vector<std::string> split_top(const std::string& s) {
  // Commas outside brackets separate entries.
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  for (char c : s) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string bracket_host(const std::string& addr) {
  return addr.find(':') != std::string::npos ? "[" + addr + "]" : addr;
}

}  // namespace

result<std::vector<std::string>> expand_nodelist(const std::string& list) {
  std::vector<std::string> out;
  for (const auto& entry : split_top(list)) {
    const auto open = entry.find('[');
    if (open == std::string::npos) {
      out.push_back(entry);
      continue;
    }
    const auto close = entry.find(']', open);
    if (close == std::string::npos)
      return make_error(errc::invalid_argument, "nodelist entry '" + entry + "' has no ']'");
    const std::string prefix = entry.substr(0, open), suffix = entry.substr(close + 1);
    std::string ranges = entry.substr(open + 1, close - open - 1);
    std::size_t start = 0;
    while (start <= ranges.size()) {
      const auto comma = std::min(ranges.find(',', start), ranges.size());
      const std::string r = ranges.substr(start, comma - start);
      start = comma + 1;
      if (r.empty()) continue;
      const auto dash = r.find('-');
      const std::string lo = r.substr(0, dash), hi = dash == std::string::npos ? lo : r.substr(dash + 1);
      char* end = nullptr;
      const long a = std::strtol(lo.c_str(), &end, 10);
      if (*end) return make_error(errc::invalid_argument, "nodelist range '" + r + "' is not numeric");
      const long b = std::strtol(hi.c_str(), &end, 10);
      if (*end || b < a) return make_error(errc::invalid_argument, "nodelist range '" + r + "' is not numeric");
      for (long v = a; v <= b; ++v) {
        std::string num = std::to_string(v);
        if (num.size() < lo.size()) num.insert(0, lo.size() - num.size(), '0');  // zero padding
        out.push_back(prefix + num + suffix);
      }
    }
  }
  return out;
}

result<std::vector<int>> expand_tasks_per_node(const std::string& spec) {
  std::vector<int> out;
  for (const auto& entry : split_top(spec)) {
    char* end = nullptr;
    const long n = std::strtol(entry.c_str(), &end, 10);
    if (end == entry.c_str() || n < 0)
      return make_error(errc::invalid_argument, "tasks per node '" + entry + "' is not a count");
    long times = 1;
    if (*end == '(') {
      if (end[1] != 'x') return make_error(errc::invalid_argument, "tasks per node '" + entry + "': expected (xN)");
      times = std::strtol(end + 2, &end, 10);
      if (*end != ')') return make_error(errc::invalid_argument, "tasks per node '" + entry + "': expected (xN)");
    } else if (*end) {
      return make_error(errc::invalid_argument, "tasks per node '" + entry + "' is not a count");
    }
    for (long i = 0; i < times; ++i) out.push_back(static_cast<int>(n));
  }
  return out;
}

result<std::vector<std::string>> slurm_task_hosts(const std::string& nodelist, const std::string& tasks_per_node,
                                                  int ntasks) {
  auto nodes = expand_nodelist(nodelist);
  if (!nodes) return nodes.err();
  std::vector<int> per;
  if (!tasks_per_node.empty()) {
    auto t = expand_tasks_per_node(tasks_per_node);
    if (!t) return t.err();
    per = *t;
  }
  if (per.empty()) {  // spread evenly, block distribution
    const int n = static_cast<int>(nodes->size());
    for (int i = 0; i < n; ++i) per.push_back(ntasks / n + (i < ntasks % n ? 1 : 0));
  }
  if (per.size() != nodes->size())
    return make_error(errc::invalid_argument, "SLURM_TASKS_PER_NODE names " + std::to_string(per.size()) +
                                                  " nodes, SLURM_NODELIST " + std::to_string(nodes->size()));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < nodes->size(); ++i)
    for (int k = 0; k < per[i]; ++k) out.push_back((*nodes)[i]);
  if (static_cast<int>(out.size()) < ntasks)
    return make_error(errc::invalid_argument, "Slurm places " + std::to_string(out.size()) +
                                                  " tasks, the graph needs " + std::to_string(ntasks));
  out.resize(ntasks);
  return out;
}

result<std::string> resolve_address(const std::string& host) {
  if (host == "*" || host == "0.0.0.0" || host == "::") return host == "::" ? std::string("[::]") : host;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0 || !res)
    return make_error(errc::not_found, "cannot resolve host '" + host + "': " + gai_strerror(rc));
  // Prefer IPv4: what a cluster's host names usually mean.
  const addrinfo* pick = res;
  for (const addrinfo* p = res; p; p = p->ai_next)
    if (p->ai_family == AF_INET) {
      pick = p;
      break;
    }
  char buf[INET6_ADDRSTRLEN] = {};
  const void* addr = pick->ai_family == AF_INET
                         ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(pick->ai_addr)->sin_addr)
                         : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(pick->ai_addr)->sin6_addr);
  ::inet_ntop(pick->ai_family, addr, buf, sizeof buf);
  // (append, not "[" + s + "]": GCC 12 warns falsely about the latter, -Wrestrict)
  const std::string out = pick->ai_family == AF_INET6 ? std::string("[").append(buf).append("]") : std::string(buf);
  ::freeaddrinfo(res);
  return out;
}

result<std::vector<endpoint_plan>> plan_endpoints(const graph_spec& g, wiring w, const std::string& ipc_dir) {
  std::vector<endpoint_plan> out;
  const int n = static_cast<int>(g.instances.size());
  std::vector<std::string> slurm_hosts;
  if (w == wiring::slurm) {
    const char* nodelist = std::getenv("SLURM_JOB_NODELIST");
    if (!nodelist) nodelist = std::getenv("SLURM_NODELIST");
    const char* per = std::getenv("SLURM_TASKS_PER_NODE");
    const char* ntasks = std::getenv("SLURM_NTASKS");
    if (!nodelist) return make_error(errc::not_found, "SLURM_NODELIST is not set (run under srun)");
    if (ntasks && std::atoi(ntasks) != n)
      return make_error(errc::invalid_argument, "the graph has " + std::to_string(n) +
                                                    " process instances but SLURM_NTASKS is " + ntasks +
                                                    " (run srun --ntasks=" + std::to_string(n) + ")");
    auto hosts = slurm_task_hosts(nodelist, per ? per : "", n);
    if (!hosts) return hosts.err();
    slurm_hosts = std::move(*hosts);
  }
  for (int k = 0; k < n; ++k) {
    const auto& inst = g.instances[k];
    endpoint_plan p;
    p.node = inst.node;
    if (w == wiring::ipc) {
      p.bind = p.connect = "ipc://" + ipc_dir + "/" + inst.node + ".sock";
      p.control = "ipc://" + ipc_dir + "/" + inst.node + ".ctl";
    } else {
      const int port = inst.port > 0 ? inst.port : g.port_base + k;
      if (port > 65535)
        return make_error(errc::invalid_argument, inst.at.str() + ": process '" + inst.node + "' gets port " +
                                                      std::to_string(port) + ", past 65535");
      const std::string host = w == wiring::slurm ? slurm_hosts[k] : inst.host.empty() ? "127.0.0.1" : inst.host;
      p.connect = "tcp://" + bracket_host(host) + ":" + std::to_string(port);
      // Bind is resolved lazily by the instance itself (its own host name resolves there).
      p.bind = "tcp://" + (inst.bind.empty() ? host : inst.bind) + ":" + std::to_string(port);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace gfdit::launch
