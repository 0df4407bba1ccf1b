// A peer process for the cross-process tests: hosts actor "echo" on node NAME bound at ENDPOINT;
// with KEYDIR, its bus is keyed with KEYDIR/NAME.key and accepts KEYDIR/*.pub ("echo" is NAME's).
//   runtime_test_peer NAME ENDPOINT [KEYDIR]
// echo answers a directed ping with a directed pong, a ping on topic "ping" with a pong on topic
// "pong", a pong request with a ping reply; it never answers a heartbeat.
#include <cstdio>

#include "actors/runtime/curve_keys.hpp"
#include "actors/runtime/node.hpp"
#include "messages/example.hpp"
#include "tests/actors/runtime/test_support.hpp"

int main(int argc, char** argv) {
  using namespace gfdit;
  if (argc != 3 && argc != 4) return std::fprintf(stderr, "usage: runtime_test_peer NAME ENDPOINT [KEYDIR]\n"), 2;
  node_options opt{.name = argv[1], .bind = argv[2]};
  if (argc == 4) {
    auto own = read_key_pair(std::string(argv[3]) + "/" + argv[1] + ".key");
    auto ring = read_key_ring(argv[3]);
    if (!own || !ring) return std::fprintf(stderr, "keys: %s\n", (own ? ring.err() : own.err()).what.c_str()), 2;
    opt.curve = bus_curve{*own, *ring};
    opt.wiring = {{"echo", argv[1]}};
  }
  auto n = node::create(opt);
  if (!n) return 1;
  (void)(*n)->add("echo", std::make_unique<testing::lambda_actor>([](context& ctx) {
                    ctx.on<msg::ping>([&ctx](const msg::ping& p, const envelope& e) {
                      (void)ctx.send(e.sender, msg::pong{p.count, p.data});
                    });
                    ctx.subscribe<msg::ping>("ping", [&ctx](const msg::ping& p, const envelope&) {
                      (void)ctx.publish("pong", msg::pong{p.count, p.data});
                    });
                    ctx.on_request<msg::pong, msg::ping>([](const msg::pong& p, const envelope&) -> result<msg::ping> {
                      return msg::ping{p.count + 1, p.data};
                    });
                    return result<void>{};
                  }));
  if (auto r = (*n)->start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
  std::printf("ready\n");
  std::fflush(stdout);
  return (*n)->run_until_signal();
}
