// ping_pong: two actors in one process, or the same two in two processes.
//   ping_pong                                  both actors in one process
//   ping_pong --role ponger --bind ipc:///tmp/pong.sock
//   ping_pong --role pinger --peer ponger=ipc:///tmp/pong.sock
#include <algorithm>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "actors/runtime/node.hpp"
#include "examples/ping_pong/ping_pong_actors.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gfdit ping-pong example"};
  std::string role = "both", bind = "tcp://127.0.0.1:*";
  std::vector<std::string> peers;
  std::int64_t count = 10;
  app.add_option("--role", role, "both | pinger | ponger")->check(CLI::IsMember({"both", "pinger", "ponger"}));
  app.add_option("--bind", bind, "this process's endpoint");
  app.add_option("--peer", peers, "NODE=ENDPOINT of another process");
  app.add_option("--count", count, "pings to send");
  CLI11_PARSE(app, argc, argv);

  gfdit::node_options opt;
  opt.name = role;
  opt.bind = bind;
  for (const auto& p : peers) {
    const auto eq = p.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "--peer '%s': expected NODE=ENDPOINT\n", p.c_str());
      return 2;
    }
    opt.peers.push_back({p.substr(0, eq), p.substr(eq + 1)});
  }
  auto n = gfdit::node::create(opt);
  if (!n) return std::fprintf(stderr, "%s\n", n.err().what.c_str()), 1;
  auto& node = **n;
  gfdit::examples::pinger* pinger = nullptr;
  if (role != "ponger") {
    auto p = std::make_unique<gfdit::examples::pinger>(count);
    pinger = p.get();
    (void)node.add("pinger", std::move(p));
  }
  if (role != "pinger") (void)node.add("ponger", std::make_unique<gfdit::examples::ponger>());
  if (auto r = node.start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
  std::printf("node '%s' listening on %s\n", node.name().c_str(), node.endpoint().c_str());
  std::fflush(stdout);
  const int status = node.run_until_signal();
  if (pinger) {
    auto rtts = pinger->rtts_us();
    std::sort(rtts.begin(), rtts.end());
    if (rtts.empty()) return std::printf("no pong received\n"), 1;
    std::printf("ping-pong: %zu round trips, median %.1f us, max %.1f us\n", rtts.size(), rtts[rtts.size() / 2],
                rtts.back());
  }
  return status;
}
