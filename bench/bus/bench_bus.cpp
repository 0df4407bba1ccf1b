// bench_bus: round-trip latency (p50, p99) and one-way throughput of the gfdit bus for 64 B,
// 4 KiB and 1 MiB payloads, in one process and across processes over ipc and tcp loopback,
// each beside raw ZeroMQ (DEALER -> ROUTER, same payloads) in the same run, with the ratio.
// "tcp+curve": both keyed (the bus with its ZAP handler and sender check, raw ZeroMQ with CURVE).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <zmq.h>

#include <CLI/CLI.hpp>

#include "actors/runtime/curve_keys.hpp"
#include "actors/runtime/node.hpp"
#include "bench/bus/bus_actors.hpp"
#include "bench/bus/raw_zmq.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit::bench {
namespace {

struct sizes {
  std::size_t payload;
  int rtt_n, thr_n;
  const char* label;
};

struct row {
  std::string transport, payload, metric;
  double gfdit, raw;
};

std::vector<row> rows;

void print_row(const row& r) {
  const bool lower_is_better = r.metric.find("us") != std::string::npos;
  const double ratio = r.gfdit / r.raw;
  std::printf("%-9s %-6s %-16s %14.1f %14.1f %8.2f%s\n", r.transport.c_str(), r.payload.c_str(), r.metric.c_str(),
              r.gfdit, r.raw, ratio, lower_is_better ? " (gfdit/raw, lower better)" : " (gfdit/raw, higher better)");
  std::fflush(stdout);
}

// Runs every size through `d` (gfdit) and `raw` (ZeroMQ), `reps` times each.
void measure(const std::string& transport, node& n, driver& d, raw_client& raw, const std::vector<sizes>& table,
             int reps) {
  auto run = [&](job j) { return run_job(n, d, j); };
  for (const auto& s : table) {
    std::vector<double> g_rtt, r_rtt, g_thr, r_thr;
    for (int rep = 0; rep < reps; ++rep) {
      auto a = run({false, s.payload, s.rtt_n});
      g_rtt.insert(g_rtt.end(), a.rtts_us.begin(), a.rtts_us.end());
      auto b = raw.round_trips_us(s.payload, s.rtt_n);
      r_rtt.insert(r_rtt.end(), b.begin(), b.end());
      g_thr.push_back(run({true, s.payload, s.thr_n}).msgs_per_s);
      r_thr.push_back(raw.throughput_msgs_per_s(s.payload, s.thr_n));
    }
    for (const auto& r : {row{transport, s.label, "rtt p50 us", percentile(g_rtt, 0.5), percentile(r_rtt, 0.5)},
                          row{transport, s.label, "rtt p99 us", percentile(g_rtt, 0.99), percentile(r_rtt, 0.99)},
                          row{transport, s.label, "msgs/s", median(g_thr), median(r_thr)}}) {
      print_row(r);
      rows.push_back(r);
    }
  }
}

}  // namespace
}  // namespace gfdit::bench

int main(int argc, char** argv) {
  using namespace gfdit;
  using namespace gfdit::bench;
  CLI::App app{"gfdit bus benchmark (peer: raw ZeroMQ)"};
  std::string serve_gfdit_ep, serve_raw_ep, json_out, keys;
  int reps = 5;
  double scale = 1.0;
  std::vector<std::string> transports{"inproc", "ipc", "tcp", "tcp+curve"};
  app.add_option("--serve-gfdit", serve_gfdit_ep, "internal: run the gfdit echo peer");
  app.add_option("--serve-raw", serve_raw_ep, "internal: run the raw ZeroMQ echo peer");
  app.add_option("--reps", reps, "repetitions per measurement (medians are reported)");
  app.add_option("--scale", scale, "multiply message counts (0.1 for a quick run)");
  app.add_option("--transports", transports, "inproc ipc tcp tcp+curve");
  app.add_option("--keys", keys, "internal: the key folder of the tcp+curve peers");
  app.add_option("--json", json_out, "write the rows as JSON lines here");
  CLI11_PARSE(app, argc, argv);
  if (!serve_gfdit_ep.empty()) return serve_echo(serve_gfdit_ep, keys);
  if (!serve_raw_ep.empty()) {
    if (keys.empty()) return raw_server(serve_raw_ep);
    auto k = read_key_pair(keys + "/peer.key");
    return k ? raw_server(serve_raw_ep, &*k) : 1;
  }

  auto count = [&](int n) { return std::max(10, static_cast<int>(n * scale)); };
  const std::vector<sizes> table{{64, count(20000), count(300000), "64B"},
                                 {4096, count(10000), count(100000), "4KiB"},
                                 {1u << 20, count(300), count(1000), "1MiB"},
                                 // A 1024x1024 RGB PNG, as a worker sends it to the gateway.
                                 {3u << 20, count(100), count(300), "3MiB"}};
  std::printf("%-9s %-6s %-16s %14s %14s %8s\n", "transport", "size", "metric", "gfdit", "raw zmq", "ratio");
  const std::string exe = self_exe();  // peers are this binary in --serve mode
  // The tcp+curve rows' keys: a pair for this process ("bench") and one for the peers ("peer").
  char key_tmpl[] = "/tmp/gfdit-bench-keys-XXXXXX";
  const std::string key_dir = ::mkdtemp(key_tmpl);
  for (const char* name : {"bench", "peer"})
    if (auto p = make_curve_key_pair(); !p || !write_key_pair(key_dir + "/k", name, *p))
      return std::fprintf(stderr, "cannot make bench keys\n"), 1;
  const std::string keys_dir = key_dir + "/k";
  for (const auto& t : transports) {
    const bool curve = t == "tcp+curve";
    std::string g_ep, r_ep;
    std::unique_ptr<testing::child_process> g_peer, r_peer;
    if (t == "inproc") {
      r_ep = "inproc://raw";
    } else if (t == "ipc") {
      g_ep = testing::unique_ipc("bench-g");
      r_ep = testing::unique_ipc("bench-r");
    } else {
      g_ep = "tcp://127.0.0.1:" + std::to_string(testing::free_tcp_port());
      r_ep = "tcp://127.0.0.1:" + std::to_string(testing::free_tcp_port());
    }
    const bool over_tcp = t == "tcp" || curve;
    node_options opt{.name = "bench", .bind = over_tcp ? "tcp://127.0.0.1:*" : testing::unique_ipc("bench-self")};
    if (curve) {
      opt.curve = bus_curve{*read_key_pair(keys_dir + "/bench.key"), *read_key_ring(keys_dir)};
      opt.wiring = {{"echo", "peer"}, {"driver", "bench"}};
    }
    if (!g_ep.empty()) {
      std::vector<std::string> g_args{exe, "--serve-gfdit", g_ep}, r_args{exe, "--serve-raw", r_ep};
      if (curve)
        for (auto* a : {&g_args, &r_args}) a->insert(a->end(), {"--keys", keys_dir});
      g_peer = std::make_unique<testing::child_process>(g_args);
      r_peer = std::make_unique<testing::child_process>(r_args);
      opt.peers = {{"peer", g_ep}};
    }
    auto n = node::create(opt);
    if (!n) return 1;
    auto d = std::make_unique<driver>();
    driver& drv = *d;
    (void)(*n)->add("driver", std::move(d));
    if (t == "inproc") (void)(*n)->add("echo", std::make_unique<echo>());
    if (auto r = (*n)->start(); !r) return std::fprintf(stderr, "%s\n", r.err().what.c_str()), 1;
    if (t == "inproc") {
      // The raw in-process peer: a ROUTER thread in the same ZeroMQ context as the client.
      raw_client client("inproc://unused");
      void* server = zmq_socket(client.ctx, ZMQ_ROUTER);
      zmq_bind(server, r_ep.c_str());
      zmq_disconnect(client.sock, "inproc://unused");
      zmq_connect(client.sock, r_ep.c_str());
      std::atomic<bool> stop{false};
      std::thread echo_thread([&] {
        zmq_pollitem_t item{server, 0, ZMQ_POLLIN, 0};
        while (!stop) {
          if (zmq_poll(&item, 1, 50) <= 0) continue;
          zmq_msg_t id, body;
          zmq_msg_init(&id);
          zmq_msg_init(&body);
          zmq_msg_recv(&id, server, 0);
          zmq_msg_recv(&body, server, 0);
          if (static_cast<const char*>(zmq_msg_data(&body))[0] == raw_ack) {
            zmq_msg_send(&id, server, ZMQ_SNDMORE);
            zmq_msg_send(&body, server, 0);
          } else {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
          }
        }
      });
      measure(t, **n, drv, client, table, reps);
      stop = true;
      echo_thread.join();
      const int linger = 0;
      zmq_setsockopt(server, ZMQ_LINGER, &linger, sizeof linger);
      zmq_close(server);
    } else if (curve) {
      const auto own = *read_key_pair(keys_dir + "/bench.key");
      raw_client client(r_ep, &own, read_key_ring(keys_dir)->public_of("peer"));
      measure(t, **n, drv, client, table, reps);
    } else {
      raw_client client(r_ep);
      measure(t, **n, drv, client, table, reps);
    }
    (*n)->stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(key_dir, ec);
  if (!json_out.empty()) {
    FILE* f = std::fopen(json_out.c_str(), "w");
    for (const auto& r : rows)
      std::fprintf(
          f, "{\"transport\":\"%s\",\"size\":\"%s\",\"metric\":\"%s\",\"gfdit\":%.3f,\"raw\":%.3f,\"ratio\":%.4f}\n",
          r.transport.c_str(), r.payload.c_str(), r.metric.c_str(), r.gfdit, r.raw, r.gfdit / r.raw);
    std::fclose(f);
  }
  return 0;
}
