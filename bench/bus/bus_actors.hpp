#pragma once
// The two actors of the bus benchmarks (bench_bus, bench_recorder): `echo` answers every ping
// that carries the ack bit; `driver` runs one job per injected system.log message: a chain of
// round trips, or a burst with one ack at its end. Plus the peer process and the statistics
// both benchmarks report.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/runtime/actor.hpp"
#include "actors/runtime/context.hpp"
#include "actors/runtime/node.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit::bench {

using clock = std::chrono::steady_clock;
constexpr std::uint64_t ack_bit = 1ull << 63;

// Answers every ping that carries the ack bit with a pong holding the same payload.
class echo : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    ctx.on<msg::ping>([&ctx](const msg::ping& p, const envelope& e) {
      if (p.count & ack_bit) (void)ctx.send(e.sender, msg::pong{p.count, p.data});
    });
    return {};
  }
};

struct job {
  bool throughput = false;
  std::size_t payload = 64;
  int n = 1000;
};

struct outcome {
  std::vector<double> rtts_us;
  double msgs_per_s = 0;
};

// Runs one job per "go" message: a chain of round trips, or a burst with one ack at the end.
class driver : public actor {
 public:
  job next;  // written by the main thread before it injects "go" (the mailbox orders it)
  testing::collector<outcome> results;

  result<void> on_configure(context& ctx) override {
    ctx.on<msg::log_line>([this, &ctx](const msg::log_line&, const envelope&) { start(ctx); });
    ctx.on<msg::pong>([this, &ctx](const msg::pong&, const envelope&) {
      const auto now = clock::now();
      if (job_.throughput) {
        results.push({{}, job_.n / std::chrono::duration<double>(now - t0_).count()});
        return;
      }
      out_.rtts_us.push_back(std::chrono::duration<double, std::micro>(now - t0_).count());
      if (++i_ < job_.n)
        send_one(ctx);
      else
        results.push(std::move(out_));
    });
    return {};
  }

 private:
  void start(context& ctx) {
    job_ = next;
    data_.assign(job_.payload, 'x');
    out_ = {};
    i_ = 0;
    if (!job_.throughput) return send_one(ctx);
    t0_ = clock::now();
    for (int k = 0; k < job_.n; ++k)
      (void)ctx.send("echo", msg::ping{(k == job_.n - 1 ? ack_bit : 0) | std::uint64_t(k), data_});
  }
  void send_one(context& ctx) {
    t0_ = clock::now();
    (void)ctx.send("echo", msg::ping{ack_bit | std::uint64_t(i_), data_});
  }

  job job_;
  std::string data_;
  outcome out_;
  int i_ = 0;
  clock::time_point t0_;
};

inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

// This executable's path, to start it again as the peer process.
inline std::string self_exe() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

// The peer process of the cross-process runs: a node "peer" hosting `echo`, until SIGTERM.
// `keys` non-empty: keyed with keys/peer.key, accepting keys/*.pub (the tcp+curve rows).
inline int serve_echo(const std::string& endpoint, const std::string& keys = {}) {
  node_options opt{.name = "peer", .bind = endpoint};
  if (!keys.empty()) {
    auto own = read_key_pair(keys + "/peer.key");
    auto ring = read_key_ring(keys);
    if (!own || !ring) return std::fprintf(stderr, "keys: %s\n", (own ? ring.err() : own.err()).what.c_str()), 1;
    opt.curve = bus_curve{*own, *ring};
    opt.wiring = {{"echo", "peer"}, {"driver", "bench"}};
  }
  auto n = node::create(opt);
  if (!n) return 1;
  (void)(*n)->add("echo", std::make_unique<echo>());
  if (auto r = (*n)->start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
  return (*n)->run_until_signal();
}

// Sends one "go" to the driver through the node and waits for the job's outcome.
inline outcome run_job(node& n, driver& d, job j) {
  d.next = j;
  envelope go;
  go.type_id = type_id_of<msg::log_line>;
  go.sender = "bench";
  go.destination = "driver";
  go.payload = encode(msg::log_line{});
  const auto before = d.results.size();
  if (!n.inject(go)) throw std::runtime_error("inject failed");
  if (!d.results.wait_for(before + 1, std::chrono::seconds(120))) throw std::runtime_error("bench job timed out");
  return d.results.items().back();
}

}  // namespace gfdit::bench
