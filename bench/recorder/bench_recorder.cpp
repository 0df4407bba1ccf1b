// bench_recorder: what recording costs the bus. The same message streams (one-way bursts and
// round-trip chains, 64 B and 4 KiB payloads) in one process (inproc) and across processes (ipc).
//
// --mode interleave (the default): ONE node per transport, with install_recorder_tap, runs
// short windows of each stream, alternately with a recorder sink attached (a
// bag::recording_queue writing a real bag file, attached through attach_tap_sink: the hot path
// of gfdit.recorder) and detached (the tap's `no sink` fast path); the order flips every pair
// (ABBA) so drift does not favour one side. Same threads, same node, same peer for both sides,
// so the pair ratio is not swamped by where the scheduler put the threads this time. Reports per
// stream the median over windows of plain and recorded, and the median (and p25..p75) of the
// per-pair ratios. The bag must hold every envelope sent in the recorded windows (exit 1 if not).
// The queue is drained between windows (untimed), so each window starts with an empty queue;
// the writer's work during a window is charged to it.
//
// --mode fresh: the older form. A fresh node per run and condition: without the tap (plain), and
// with the tap plus a gfdit.recorder writing a bag (recorded); medians of --reps runs.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "actors/recorder/recorder_actor.hpp"
#include "actors/recorder/recorder_tap.hpp"
#include "actors/recorder/recording_queue.hpp"
#include "actors/runtime/node.hpp"
#include "actors/runtime/registry.hpp"
#include "bag/bag_reader.hpp"
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

int settle_ms = 300;  // fresh mode; interleave mode's default is 5
int chunk_kb = 0;     // 0: the recorder's default
int queue_kb = 0;     // 0: the recorder's default (each sending thread's lane holds this much)
int copy_limit = -1;  // bytes; -1: the recorder's default
std::string types;    // the recorder's type filter (diagnosis: a filter that matches nothing)
// Interleave mode, diagnosis: the writer thread works only between windows (a chunk and queue
// bound larger than any window, no flush tick), so a recorded window pays only the senders'
// part (tap + queue push): what recording costs when the writer has a core of its own.
bool defer_writer = false;
// Interleave mode, diagnosis: the attached sink does nothing (no queue, no bag): the tap's own
// part of the cost (sink list, dedup of deliveries).
bool null_sink = false;
// Interleave mode, diagnosis: the sink keeps each envelope's pointer in a per-thread list and
// lets go of the list, on that thread, once it holds N (no queue, no bag): what holding a
// reference and keeping envelopes alive cost without any synchronisation.
int hold = 0;
// Interleave mode, diagnosis: the sink copies each envelope's payload into a per-thread ring of
// this many KiB (no queue, no writer): what the copy alone costs the sending thread.
int copy_ring_kb = 0;

// A started node with the driver (and, in one process, the echo peer); `before_start` adds what
// the condition needs first (the tap, a recorder).
std::pair<std::unique_ptr<node>, driver*> start_node(const std::string& name, bool remote, const std::string& peer_ep,
                                                     const std::function<void(node&)>& before_start) {
  node_options opt{.name = name, .bind = testing::unique_ipc("bench-rec")};
  if (remote) opt.peers = {{"peer", peer_ep}};
  auto n = node::create(opt);
  if (!n) throw std::runtime_error(n.err().what);
  before_start(**n);
  auto d = std::make_unique<driver>();
  driver* drv = d.get();
  (void)(*n)->add("driver", std::move(d));
  if (!remote) (void)(*n)->add("echo", std::make_unique<echo>());
  if (auto r = (*n)->start(); !r) throw std::runtime_error(r.err().what);
  return {std::move(*n), drv};
}

// What a stream reports: a burst its msgs/s, a chain of round trips its median in us.
double figure(const job& j, const outcome& o) { return j.throughput ? o.msgs_per_s : median(o.rtts_us); }

// The envelopes in a finished bag, which is then removed.
std::uint64_t count_and_remove(const std::string& bag_path) {
  auto r = bag::reader::open(bag_path);
  if (!r) throw std::runtime_error(r.err().what);
  const std::uint64_t n = (*r)->idx().count;
  std::filesystem::remove(bag_path);
  return n;
}

// --- fresh mode: a fresh node, with or without recording, runs every stream once ---
std::vector<double> run_once(bool remote, const std::string& peer_ep, bool record, const std::string& bag_path,
                             const std::vector<stream>& streams, int instance, std::uint64_t* recorded) {
  auto [n, drv] =
      start_node(std::string(record ? "rec" : "plain") + std::to_string(instance), remote, peer_ep, [&](node& nd) {
        if (!record) return;
        install_recorder_tap(nd);
        (void)recorder_actor_types();
        nlohmann::json params{{"path", bag_path}};
        if (chunk_kb > 0) params["chunk_kb"] = chunk_kb;
        if (!types.empty()) params["types"] = types;
        (void)nd.add("recorder", actor_registry::global().make("gfdit.recorder"), params);
      });
  std::vector<double> out;
  for (const auto& s : streams) {
    // Both sides settle the same time between streams, so the writer's backlog from one stream
    // is not charged to the next.
    std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
    out.push_back(figure(s.j, run_job(*n, *drv, s.j)));
  }
  n->stop();
  n.reset();
  if (record) *recorded = count_and_remove(bag_path);
  return out;
}

// --- interleave mode ---

// What gfdit.recorder's tap_sink does per envelope: push it to the queue with its stamp.
class queue_sink final : public tap_sink {
 public:
  explicit queue_sink(bag::recording_queue& q) : q_(q) {}
  void on_envelope(const envelope_ptr& env, std::uint64_t stamp) override {
    if (copy_ring_kb > 0) {
      thread_local std::vector<char> ring(static_cast<std::size_t>(copy_ring_kb) << 10);
      thread_local std::size_t at = 0;
      const auto& p = env->payload;
      if (at + p.size() > ring.size()) at = 0;
      if (p.size() <= ring.size()) std::memcpy(ring.data() + at, p.data(), p.size()), at += p.size();
      return;
    }
    if (hold > 0) {
      thread_local std::vector<envelope_ptr> held;
      held.push_back(env);
      if (static_cast<int>(held.size()) >= hold) held.clear();
      return;
    }
    if (!null_sink) q_.push(env, stamp);
  }

 private:
  bag::recording_queue& q_;
};

struct pair_stats {
  std::vector<double> plain, rec, ratio;  // per window; ratio per (plain, recorded) pair
};

// One node with the tap installed; for each stream, `windows` pairs of windows, one recorded
// (sink attached) and one plain (detached), the order flipped every pair. Returns the stats per
// stream; *sent counts the envelopes routed in recorded windows, *in_bag what the bag holds.
std::vector<pair_stats> run_interleaved(bool remote, const std::string& peer_ep, const std::string& bag_path,
                                        const std::vector<stream>& streams, int windows, int warmup,
                                        std::uint64_t* sent, std::uint64_t* in_bag) {
  auto [n, drv] = start_node("bench", remote, peer_ep, [](node& nd) { install_recorder_tap(nd); });

  auto w = bag::writer::create(bag_path, bag::header::current());
  if (!w) throw std::runtime_error(w.err().what);
  bag::queue_options qo;  // gfdit.recorder's defaults: 1 MiB chunks, 64 MiB queue, block
  if (chunk_kb > 0) qo.chunk_bytes = static_cast<std::size_t>(chunk_kb) << 10;
  if (queue_kb > 0) qo.max_queued_bytes = static_cast<std::size_t>(queue_kb) << 10;
  if (copy_limit >= 0) qo.copy_limit = static_cast<std::size_t>(copy_limit);
  if (defer_writer) {
    qo.chunk_bytes = std::size_t{256} << 20;  // one chunk per window (the writer reserves it)
    qo.max_queued_bytes = std::size_t{1} << 30;
    qo.flush_every = std::chrono::hours(1);
  }
  bag::recording_queue q(std::move(*w), qo);
  queue_sink sink(q);

  std::vector<pair_stats> out(streams.size());
  *sent = 0;
  for (std::size_t k = 0; k < streams.size(); ++k) {
    const job& j = streams[k].j;
    // Envelopes one window routes: the injected "go", then n pings and n pongs (chain) or n
    // pings and one pong (burst).
    const std::uint64_t per_window = 1 + static_cast<std::uint64_t>(j.n) + (j.throughput ? 1 : j.n);
    auto window = [&](bool record) {
      // Untimed: the writer drains the previous window, then a short pause for both sides.
      q.flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
      if (record) attach_tap_sink(&sink);
      const auto o = run_job(*n, *drv, j);
      // The last pong was tapped before it reached the driver: nothing of this window is
      // still on its way to the sink.
      if (record) detach_tap_sink(&sink), *sent += per_window;
      return figure(j, o);
    };
    for (int i = 0; i < warmup; ++i) window(false), window(true);
    for (int i = 0; i < windows; ++i) {
      double p = 0, r = 0;
      if (i % 2 == 0)
        p = window(false), r = window(true);
      else
        r = window(true), p = window(false);
      out[k].plain.push_back(p);
      out[k].rec.push_back(r);
      out[k].ratio.push_back(r / p);
    }
  }
  n->stop();
  n.reset();
  if (auto r = q.stop(); !r) throw std::runtime_error(r.err().what);
  *in_bag = count_and_remove(bag_path);
  return out;
}

}  // namespace
}  // namespace gfdit::bench

int main(int argc, char** argv) {
  using namespace gfdit;
  using namespace gfdit::bench;
  CLI::App app{"recording overhead on the bus (peer: the same node and streams without the recorder, same run)"};
  std::string serve_ep, mode = "interleave", dir = std::filesystem::temp_directory_path().string();
  int reps = 5, windows = 30, warmup = 2;
  double scale = 1.0;
  std::vector<std::string> transports{"inproc", "ipc"};
  app.add_option("--serve", serve_ep, "internal: run the echo peer");
  app.add_option("--mode", mode,
                 "interleave (one node, recorder attached/detached per window) or fresh (a node per run)")
      ->check(CLI::IsMember({"interleave", "fresh"}));
  app.add_option("--windows", windows, "interleave: (plain, recorded) window pairs per stream");
  app.add_option("--warmup", warmup, "interleave: pairs run first and not counted");
  app.add_option("--reps", reps, "fresh: alternating runs per condition (medians are reported)");
  app.add_option("--scale", scale, "multiply message counts");
  app.add_option("--dir", dir, "where the bag is written");
  app.add_option("--transports", transports, "inproc ipc");
  app.add_option("--settle-ms", settle_ms, "pause before each stream (fresh) or window (interleave), both sides");
  app.add_option("--chunk-kb", chunk_kb, "the recorder's chunk size");
  app.add_option("--copy-limit", copy_limit,
                 "interleave: records above this many bytes keep the envelope by reference");
  app.add_option("--queue-kb", queue_kb, "interleave: the queue bound (each sending thread's lane)");
  app.add_flag("--defer-writer", defer_writer,
               "interleave, diagnosis: the writer runs only between windows (the senders' part of the cost)");
  app.add_flag("--null-sink", null_sink, "interleave, diagnosis: the sink does nothing (the tap's part of the cost)");
  app.add_option("--copy-ring-kb", copy_ring_kb,
                 "interleave, diagnosis: the sink copies payloads into a per-thread ring of N KiB, no queue");
  app.add_option("--hold", hold, "interleave, diagnosis: the sink keeps envelopes in a per-thread list of N, no queue")
      ->check(CLI::PositiveNumber);
  app.add_option("--types", types, "fresh: record only these types (diagnosis)");
  CLI11_PARSE(app, argc, argv);
  if (!serve_ep.empty()) return serve_echo(serve_ep);
  const bool interleave = mode == "interleave";
  if (interleave && app.count("--settle-ms") == 0) settle_ms = 5;
  auto count = [&](int n) { return std::max(10, static_cast<int>(n * scale)); };
  // Fresh mode runs each stream once per node; interleave mode runs windows of it.
  const std::vector<stream> streams = interleave
                                          ? std::vector<stream>{{"64B rtt p50 us", {false, 64, count(1000)}},
                                                                {"4KiB rtt p50 us", {false, 4096, count(1000)}},
                                                                {"64B burst msgs/s", {true, 64, count(20000)}},
                                                                {"4KiB burst msgs/s", {true, 4096, count(5000)}}}
                                          : std::vector<stream>{{"64B rtt p50 us", {false, 64, count(5000)}},
                                                                {"4KiB rtt p50 us", {false, 4096, count(5000)}},
                                                                {"64B burst msgs/s", {true, 64, count(200000)}},
                                                                {"4KiB burst msgs/s", {true, 4096, count(50000)}}};
  const std::string exe = self_exe();  // peers are this binary in --serve mode
  const std::string bag_path = dir + "/bench-recorder-" + std::to_string(::getpid()) + ".bag";
  if (interleave) {
    std::printf(
        "mode interleave: one node per transport, recorder sink attached (recorded) / detached (plain)\n"
        "in alternate windows; %d pairs per stream (+%d warm-up), medians over windows.\n"
        "ratio = recorded / plain per adjacent pair (rtt: >1 is slower; msgs/s: <1 is slower);\n"
        "cost = extra time per message when recording (+3.0%% = 3%% slower), and in ns per message\n"
        "(median over pairs; a round trip is two messages).\n",
        windows, warmup);
    if (null_sink)
      std::printf("--null-sink: the attached sink drops everything (the tap's cost only; no bag check).\n");
    if (hold > 0)
      std::printf("--hold %d: the sink holds envelopes per thread, %d at a time (no queue; no bag check).\n", hold,
                  hold);
    if (copy_ring_kb > 0)
      std::printf(
          "--copy-ring-kb %d: the sink copies payloads into a %d KiB ring per thread (no queue; no bag check).\n",
          copy_ring_kb, copy_ring_kb);
    if (defer_writer) std::printf("--defer-writer: the bag writer works only between windows (senders' cost only).\n");
    std::printf("%-9s %-18s %5s %12s %12s %7s %13s %7s %7s\n", "transport", "stream", "msgs", "plain", "recorded",
                "ratio", "p25..p75", "cost", "ns/msg");
  } else {
    std::printf("mode fresh: a new node per run; plain = no tap, recorded = tap + gfdit.recorder; medians of %d runs\n",
                reps);
    std::printf("%-9s %-20s %14s %14s %8s\n", "transport", "stream", "plain", "recorded", "ratio");
  }
  int instance = 0, failures = 0;
  for (const auto& t : transports) {
    const bool remote = t != "inproc";
    std::unique_ptr<testing::child_process> peer;
    std::string ep;
    if (remote) {
      ep = testing::unique_ipc("bench-rec-peer");
      peer = std::make_unique<testing::child_process>(std::vector<std::string>{exe, "--serve", ep});
    }
    if (interleave) {
      std::uint64_t sent = 0, in_bag = 0;
      const auto st = run_interleaved(remote, ep, bag_path, streams, windows, warmup, &sent, &in_bag);
      for (std::size_t k = 0; k < streams.size(); ++k) {
        const double ratio = median(st[k].ratio);
        // Time per message grows by ratio (rtt) or by 1/ratio (msgs/s).
        const double cost = streams[k].j.throughput ? 1 / ratio - 1 : ratio - 1;
        // The same in ns per message, pair by pair: a round trip is two messages.
        std::vector<double> extra_ns;
        for (std::size_t i = 0; i < st[k].ratio.size(); ++i)
          extra_ns.push_back(streams[k].j.throughput ? 1e9 / st[k].rec[i] - 1e9 / st[k].plain[i]
                                                     : (st[k].rec[i] - st[k].plain[i]) * 1e3 / 2);
        char iqr[32];
        std::snprintf(iqr, sizeof iqr, "%.3f..%.3f", percentile(st[k].ratio, 0.25), percentile(st[k].ratio, 0.75));
        std::printf("%-9s %-18s %5d %12.1f %12.1f %7.3f %13s %+6.1f%% %+7.0f\n", t.c_str(), streams[k].label,
                    streams[k].j.n, median(st[k].plain), median(st[k].rec), ratio, iqr, 100 * cost, median(extra_ns));
      }
      const bool ok = null_sink || hold > 0 || copy_ring_kb > 0 ? in_bag == 0 : sent == in_bag;
      failures += !ok;
      std::printf("%-9s bag check: %llu envelopes in the bag, %llu sent in recorded windows: %s\n", t.c_str(),
                  static_cast<unsigned long long>(in_bag), static_cast<unsigned long long>(sent),
                  ok ? "ok" : "MISMATCH");
      std::fflush(stdout);
      continue;
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
    std::printf(
        "%-9s last recorded run: %llu envelopes in the bag for %llu sent (+ the go messages and recorder stats)\n",
        t.c_str(), static_cast<unsigned long long>(recorded), static_cast<unsigned long long>(expect));
    std::fflush(stdout);
  }
  return failures ? 1 : 0;
}
