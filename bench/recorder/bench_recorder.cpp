// bench_recorder: what recording costs the bus. The same message streams (one-way bursts and
// round-trip chains, 64 B and 4 KiB payloads) in one process and across processes (ipc), each
// run on a fresh node without the recorder tap and on one with the tap and a gfdit.recorder
// writing everything to a bag, alternating, medians of --reps runs; prints recorded / plain.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <CLI/CLI.hpp>

#include "actors/recorder/bag_reader.hpp"
#include "actors/recorder/recorder_actor.hpp"
#include "actors/recorder/recorder_tap.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "bench/bus/bus_actors.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"
#include "tests/actors/runtime/test_support.hpp"

namespace gfdit::bench {
namespace {

struct stream {
  const char* label;
  job j;
};

// A fresh node, with or without recording, runs every stream once.
int settle_ms = 300;
int chunk_kb = 0;  // 0: the recorder's default
std::string types;  // the recorder's type filter (diagnosis: a filter that matches nothing)

std::vector<double> run_once(bool remote, const std::string& peer_ep, bool record, const std::string& bag_path,
                             const std::vector<stream>& streams, int instance, std::uint64_t* recorded) {
  node_options opt{.name = std::string(record ? "rec" : "plain") + std::to_string(instance),
                   .bind = testing::unique_ipc("bench-rec")};
  if (remote) opt.peers = {{"peer", peer_ep}};
  auto n = node::create(opt);
  if (!n) throw std::runtime_error(n.err().what);
  if (record) {
    install_recorder_tap(**n);
    (void)recorder_actor_types();
    nlohmann::json params{{"path", bag_path}};
    if (chunk_kb > 0) params["chunk_kb"] = chunk_kb;
    if (!types.empty()) params["types"] = types;
    (void)(*n)->add("recorder", actor_registry::global().make("gfdit.recorder"), params);
  }
  auto d = std::make_unique<driver>();
  driver& drv = *d;
  (void)(*n)->add("driver", std::move(d));
  if (!remote) (void)(*n)->add("echo", std::make_unique<echo>());
  if (auto r = (*n)->start(); !r) throw std::runtime_error(r.err().what);
  std::vector<double> out;
  for (const auto& s : streams) {
    // Both sides settle the same time between streams, so the writer's backlog from one stream
    // is not charged to the next.
    std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
    const auto o = run_job(**n, drv, s.j);
    // A burst reports msgs/s; a chain of round trips its median in us.
    out.push_back(s.j.throughput ? o.msgs_per_s : median(o.rtts_us));
  }
  (*n)->stop();
  n->reset();
  if (record) {
    auto r = bag::reader::open(bag_path);
    if (!r) throw std::runtime_error(r.err().what);
    *recorded = (*r)->idx().count;
    std::filesystem::remove(bag_path);
  }
  return out;
}



}  // namespace
}  // namespace gfdit::bench

int main(int argc, char** argv) {
  using namespace gfdit;
  using namespace gfdit::bench;
  CLI::App app{"recording overhead on the bus (peer: the same streams without the recorder)"};
  std::string serve_ep, dir = std::filesystem::temp_directory_path().string();
  int reps = 5;
  double scale = 1.0;
  std::vector<std::string> transports{"inproc", "ipc"};
  app.add_option("--serve", serve_ep, "internal: run the echo peer");
  app.add_option("--reps", reps, "alternating runs per condition (medians are reported)");
  app.add_option("--scale", scale, "multiply message counts");
  app.add_option("--dir", dir, "where the bag is written");
  app.add_option("--transports", transports, "inproc ipc");
  app.add_option("--settle-ms", settle_ms, "pause before each stream (both sides)");
  app.add_option("--chunk-kb", chunk_kb, "the recorder's chunk size");
  app.add_option("--types", types, "record only these types (diagnosis)");
  CLI11_PARSE(app, argc, argv);
  if (!serve_ep.empty()) return serve_echo(serve_ep);
  auto count = [&](int n) { return std::max(10, static_cast<int>(n * scale)); };
  const std::vector<stream> streams{{"64B rtt p50 us", {false, 64, count(5000)}},
                                    {"4KiB rtt p50 us", {false, 4096, count(5000)}},
                                    {"64B burst msgs/s", {true, 64, count(200000)}},
                                    {"4KiB burst msgs/s", {true, 4096, count(50000)}}};
  const std::string exe = self_exe();  // peers are this binary in --serve mode
  const std::string bag_path = dir + "/bench-recorder-" + std::to_string(::getpid()) + ".bag";
  std::printf("%-9s %-20s %14s %14s %8s\n", "transport", "stream", "plain", "recorded", "ratio");
  int instance = 0;
  for (const auto& t : transports) {
    const bool remote = t != "inproc";
    std::unique_ptr<testing::child_process> peer;
    std::string ep;
    if (remote) {
      ep = testing::unique_ipc("bench-rec-peer");
      peer = std::make_unique<testing::child_process>(std::vector<std::string>{exe, "--serve", ep});
    }
    std::vector<std::vector<double>> plain(streams.size()), rec(streams.size());
    std::uint64_t recorded = 0, expect = 0;
    for (const auto& s : streams) expect += s.j.throughput ? s.j.n + 1 : 2 * s.j.n;
    for (int rep = 0; rep < reps; ++rep) {
      // Alternate the order so drift (thermal, page cache) does not favour one side.
      for (bool record : rep % 2 ? std::vector<bool>{true, false} : std::vector<bool>{false, true}) {
        auto v = run_once(remote, ep, record, bag_path, streams, instance++, &recorded);
        for (std::size_t k = 0; k < streams.size(); ++k) (record ? rec : plain)[k].push_back(v[k]);
      }
    }
    for (std::size_t k = 0; k < streams.size(); ++k) {
      const double p = median(plain[k]), r = median(rec[k]);
      std::printf("%-9s %-20s %14.1f %14.1f %8.3f\n", t.c_str(), streams[k].label, p, r, r / p);
    }
    // Every message of the last recorded run (stats messages aside) is in its bag.
    std::printf("%-9s last recorded run: %llu envelopes in the bag for %llu sent (+ recorder stats)\n", t.c_str(),
                static_cast<unsigned long long>(recorded), static_cast<unsigned long long>(expect));
    std::fflush(stdout);
  }
  return 0;
}
