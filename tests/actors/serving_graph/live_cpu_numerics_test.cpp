// The product's promise, live: the same request gives the same bits however the scheduler
// parallelised it. Admission, scheduler and membership in one process, four `cpu` workers (real
// DiT numerics, Ulysses over the host collectives) in four more, and the load client here serve
// launch/workloads/cpu-tiny.yaml twice: under `static:4` (every task at degree 4 on one fixed
// group) and under `edf-best-fit` (degrees 1, 2 and 4 chosen per chunk, requests moving between
// groups mid-trajectory). Every request's final latent hash must be the same in both runs and
// equal to a plain single-process degree-1 denoise computed here. A second run kills a worker
// process midway: no hang, no lost request, no changed bit (restored from host checkpoints).
// With 2+ GPUs the same promise holds on `gpu` workers (one GPU each, Ulysses through a cuda-ipc
// World) against a single-GPU degree-1 denoise.
// The static run's workers join their World through files (rendezvous: file), the others through
// the bus (WorldJoin/WorldBlobs with the hub in the membership actor).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "actors/client/load_client.hpp"
#include "actors/runtime/node.hpp"
#include "actors/sim/workload.hpp"
#include "actors/worker/dit_backend.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "tests/actors/runtime/test_support.hpp"
#include "tests/support/rank_processes.hpp"

namespace gfdit {
namespace {

using testing::child_process;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int cpu_workers = 4;
constexpr std::int64_t weight_seed = 7;
const std::string workload_path = GFDIT_SOURCE_DIR "/launch/workloads/cpu-tiny.yaml";

// The node binary: $GFDIT_SERVING_NODE, else next to this test (a bundle), else where it was built.
std::string serving_node() {
  return testing::worker_binary("GFDIT_SERVING_NODE", "serving_test_node", GFDIT_SERVING_NODE);
}

std::string unique_dir(const std::string& tag) {
  static int n = 0;
  const auto d =
      fs::temp_directory_path() / ("gfdit-cpuw-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(n++));
  fs::remove_all(d);
  return d.string();
}

struct dit_graph {
  int workers = cpu_workers;
  std::string control_ep = testing::unique_ipc("control");
  std::string world_dir = unique_dir("world");
  std::string task_log = unique_dir("log") + ".log";
  std::unique_ptr<child_process> control;
  std::vector<std::unique_ptr<child_process>> worker_procs;

  // rendezvous: how the workers set up their World, "bus" (through the membership actor, the
  // default) or "file" (through files in world_dir).
  explicit dit_graph(const std::string& policy, int collective_timeout_ms = 20000, int heartbeat_timeout_ms = 20000,
                     const std::string& rendezvous = "bus", int heartbeat_ms = 200, int chunk_steps = 2,
                     const std::string& backend = "cpu", int n_workers = cpu_workers,
                     const std::string& gpu_collectives = "cuda-ipc")
      : workers(n_workers) {
    control = std::make_unique<child_process>(std::vector<std::string>{
        serving_node(), "--name", "control", "--bind", control_ep, "--actor", "gfdit.admission", "admission",
        nlohmann::json{{"gpus", workers}}.dump(), "--actor", "gfdit.scheduler", "scheduler",
        nlohmann::json{{"policy", policy}, {"chunk_steps", chunk_steps}}.dump(), "--actor", "gfdit.membership",
        "membership", nlohmann::json{{"heartbeat_timeout_ms", heartbeat_timeout_ms}}.dump()});
    for (int w = 0; w < workers; ++w) {
      nlohmann::json params = {{"id", w},
                               {"backend", backend},
                               {"world_dir", world_dir},
                               {"world_size", workers},
                               {"weight_seed", weight_seed},
                               {"collective_timeout_ms", collective_timeout_ms},
                               {"task_log", task_log},
                               {"rendezvous", rendezvous},
                               {"heartbeat_ms", heartbeat_ms}};
      if (backend == "gpu") params["gpu_collectives"] = gpu_collectives;
      worker_procs.push_back(std::make_unique<child_process>(std::vector<std::string>{
          serving_node(), "--name", "w" + std::to_string(w), "--bind", testing::unique_ipc("w"), "--peer",
          "control=" + control_ep, "--actor", "gfdit.worker", "worker-" + std::to_string(w), params.dump()}));
    }
  }
  ~dit_graph() {
    std::error_code ec;
    fs::remove_all(world_dir, ec);
    fs::remove(task_log, ec);
  }

  // One line per task, from its reporting member: request id -> the member counts of its
  // denoise chunks in order.
  std::map<std::uint64_t, std::vector<int>> denoise_degrees() const {
    std::map<std::uint64_t, std::map<int, int>> by_step;  // request -> step_begin -> degree
    std::ifstream in(task_log);
    const std::regex re(
        R"(request=(\d+) task=\d+ stage=denoise steps=(\d+)-\d+ members=([\d,]+) input=\w+ ok=1 us=\d+)");
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (!std::regex_match(line, m, re)) continue;
      const std::string members = m[3];
      by_step[std::stoull(m[1])][std::stoi(m[2])] =
          1 + static_cast<int>(std::count(members.begin(), members.end(), ','));
    }
    std::map<std::uint64_t, std::vector<int>> out;
    for (const auto& [rid, steps] : by_step)
      for (const auto& [step, degree] : steps) out[rid].push_back(degree);
    return out;
  }
};

// Tasks that ran (ok) from a host checkpoint, after a holder was lost.
int restored_tasks(const dit_graph& g) {
  std::ifstream in(g.task_log);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find("input=checkpoint ok=1") != std::string::npos;
  return n;
}

struct served {
  sim::run_metrics metrics;
  std::map<std::string, msg::request_done> done;  // by client tag
};

// `meanwhile` runs on a thread of its own while the graph serves; it sees the RequestDones so far.
using done_log = testing::collector<msg::request_done>;
served serve(dit_graph& g, std::function<void(done_log&)> meanwhile = {}, const std::string& workload = workload_path) {
  served out;
  auto n = node::create({.name = "client", .peers = {{"control", g.control_ep}}, .peer_timeout = 20s});
  EXPECT_TRUE(n);
  done_log dones;
  EXPECT_TRUE((*n)->add("observer", std::make_unique<testing::lambda_actor>([&dones](context& ctx) {
                          ctx.subscribe<msg::request_done>(
                              "serving.done", [&dones](const msg::request_done& d, const envelope&) { dones.push(d); });
                          return result<void>{};
                        })));
  testing::collector<sim::run_metrics> metrics;
  load_client_options opt;
  opt.workload = workload;
  opt.gpus = g.workers;
  opt.speedup = 1;
  opt.max_wall_s = 50;
  EXPECT_TRUE(
      (*n)->add("client", std::make_unique<load_client>(opt, [&](const sim::run_metrics& m) { metrics.push(m); })));
  auto r = (*n)->start();
  EXPECT_TRUE(r) << (r ? "" : r.err().what);
  std::thread side;
  if (meanwhile) side = std::thread([&] { meanwhile(dones); });
  EXPECT_TRUE(metrics.wait_for(1, 60s));
  if (side.joinable()) side.join();
  auto w = sim::load_workload(workload);
  EXPECT_TRUE(w);
  // The client may finish a moment before the observer sees the last RequestDone.
  EXPECT_TRUE(dones.wait_for(static_cast<std::size_t>(w ? w->requests : 0), 5s));
  if (!metrics.items().empty()) out.metrics = metrics.items()[0];
  for (const auto& d : dones.items()) out.done[d.client_tag] = d;
  std::printf("%s", sim::format_table({out.metrics}).c_str());
  return out;
}

// The single-process reference: degree 1, no World, the same request parameters; on the CPU,
// or on GPU 0 for gpu workers.
std::map<std::string, std::uint64_t> reference_hashes(bool gpu = false, int workers = cpu_workers) {
  std::map<std::string, std::uint64_t> out;
  auto w = sim::load_workload(workload_path);
  EXPECT_TRUE(w);
  if (!w) return out;
  auto trace = sim::generate_arrivals(*w, cost_model::stock(), workers, w->seed);
  EXPECT_TRUE(trace);
  if (!trace) return out;
  std::map<std::string, dit::model> models;
  std::map<std::string, std::unique_ptr<dit::gpu_model>> gpu_models;
  for (std::size_t i = 0; i < trace->size(); ++i) {
    const auto& r = (*trace)[i].request;
    auto c = served_model_config(r.model, r.width, r.height);
    EXPECT_TRUE(c) << (c ? "" : c.err().what);
    if (!c) continue;
    const std::string key = std::to_string(c->width) + "x" + std::to_string(c->height);
    if (!models.count(key)) {
      auto m = dit::model::generate(*c, weight_seed);
      EXPECT_TRUE(m) << m.err().what;
      if (!m) return out;
      models.emplace(key, std::move(*m));
      if (gpu) {
        auto g = dit::gpu_model::upload(models.at(key), 0);
        EXPECT_TRUE(g) << (g ? "" : g.err().what);
        if (!g) return out;
        gpu_models.emplace(key, std::move(*g));
      }
    }
    const auto req = served_request(*c, r);
    auto x = dit::initial_latent(*c, req, 1, 0);
    auto ok = gpu ? gpu_models.at(key)->denoise(req, 0, req.steps, dit::sp_group{}, x)
                  : dit::denoise(models.at(key), req, 0, req.steps, dit::sp_group{}, x);
    EXPECT_TRUE(ok) << (ok ? "" : ok.err().what);
    out["client/" + std::to_string(i)] = latent_hash(dit::unpatchify(*c, x));
  }
  return out;
}

void expect_all_done(const served& s, const std::map<std::string, std::uint64_t>& ref, const char* run) {
  EXPECT_EQ(s.metrics.failed, 0) << run;
  EXPECT_EQ(s.metrics.done, static_cast<std::int64_t>(ref.size())) << run;
  ASSERT_EQ(s.done.size(), ref.size()) << run;
  for (const auto& [tag, hash] : ref) {
    auto it = s.done.find(tag);
    ASSERT_NE(it, s.done.end()) << run << ": no RequestDone for " << tag;
    EXPECT_EQ(it->second.status, "done") << run << " " << tag << ": " << it->second.error;
    EXPECT_EQ(it->second.result_hash, hash) << run << " " << tag << ": bits differ from the degree-1 reference";
  }
}

TEST(live_cpu_numerics, a_request_gives_the_same_bits_however_it_was_parallelised) {
  const auto ref = reference_hashes();
  ASSERT_EQ(ref.size(), 8u);
  std::set<std::uint64_t> distinct;
  for (const auto& [tag, h] : ref) distinct.insert(h);
  EXPECT_EQ(distinct.size(), ref.size()) << "the requests should differ (seeds, shapes)";

  served fixed, elastic;
  std::map<std::uint64_t, std::vector<int>> fixed_degrees, elastic_degrees;
  {
    dit_graph g("static:4", 20000, 20000, "file");  // the elastic run sets up its World through the bus
    fixed = serve(g);
    fixed_degrees = g.denoise_degrees();
  }
  {
    dit_graph g("edf-best-fit");
    elastic = serve(g);
    elastic_degrees = g.denoise_degrees();
  }
  expect_all_done(fixed, ref, "static:4");
  expect_all_done(elastic, ref, "edf-best-fit");
  for (const auto& [tag, d] : fixed.done) {
    auto e = elastic.done.find(tag);
    ASSERT_NE(e, elastic.done.end());
    EXPECT_EQ(d.result_hash, e->second.result_hash) << tag << ": static and elastic runs differ";
    std::printf("%-10s hash %016llx  regroupings static %d, edf-best-fit %d\n", tag.c_str(),
                static_cast<unsigned long long>(d.result_hash), d.regroupings, e->second.regroupings);
  }

  // The runs really differed: static kept every chunk at degree 4 on one group; the elastic
  // policy moved requests between groups and changed a running request's degree between chunks.
  int moved = 0;
  for (const auto& [tag, d] : fixed.done) EXPECT_EQ(d.regroupings, 0) << tag;
  for (const auto& [tag, d] : elastic.done) moved += d.regroupings > 0;
  EXPECT_GT(moved, 0);
  for (const auto& [rid, ds] : fixed_degrees)
    for (int d : ds) EXPECT_EQ(d, 4) << "static request " << rid;
  bool changed_mid_trajectory = false;
  for (const auto& [rid, ds] : elastic_degrees) {
    std::string s;
    for (int d : ds) s += std::to_string(d) + " ";
    std::printf("edf-best-fit request %llu denoise chunk degrees: %s\n", static_cast<unsigned long long>(rid),
                s.c_str());
    changed_mid_trajectory = changed_mid_trajectory || std::set<int>(ds.begin(), ds.end()).size() > 1;
  }
  EXPECT_EQ(fixed_degrees.size(), ref.size());
  EXPECT_EQ(elastic_degrees.size(), ref.size());
  EXPECT_TRUE(changed_mid_trajectory) << "no request changed its degree between chunks under edf-best-fit";
}

// A worker process killed mid-run: its peers' collectives time out into failed tasks (no hang),
// membership declares it dead, and the scheduler re-runs what it held from the last reported
// chunk, which the backend restores from its host checkpoint (or remakes from the seed at step
// 0). Every request still finishes, with its reference bits.
TEST(live_cpu_numerics, a_killed_worker_costs_retries_but_no_request_and_no_bit) {
  const auto ref = reference_hashes();
  dit_graph g("edf-best-fit", /*collective_timeout_ms=*/1000, /*heartbeat_timeout_ms=*/2500);
  // Once the first request is done (the World is up, tasks run), with the others in flight.
  const auto s = serve(g, [&](done_log& dones) {
    EXPECT_TRUE(dones.wait_for(1, 30s));
    g.worker_procs[3]->signal(SIGKILL);
  });
  expect_all_done(s, ref, "edf-best-fit, worker 3 killed");
  int retries = 0;
  for (const auto& [tag, d] : s.done) retries += d.retries;
  std::printf("tasks retried after the kill: %d, tasks run from a checkpoint: %d\n", retries, restored_tasks(g));
}

// Tasks longer than membership's heartbeat timeout: the worker computes on its executor thread
// and keeps beating, so no worker is declared dead and no task is re-run.
TEST(live_cpu_numerics, workers_keep_beating_while_a_task_outlasts_the_heartbeat_timeout) {
  const std::string wl = unique_dir("wl") + ".yaml";
  std::ofstream(wl) << "name: cpu-long\n"
                       "description: the largest tiny-DiT image, 32 steps with CFG in one chunk\n"
                       "seed: 5\nrequests: 2\nchunk_steps: 32\n"
                       "classes:\n"
                       "  - {name: big, model: dit-tiny, width: 256, height: 256, steps: 32, guidance: 4.0, "
                       "slo_multiple: 100, weight: 1}\n"
                       "arrivals:\n  process: poisson\n  rate_per_s: 16\n";
  constexpr int timeout_ms = 1000;
  dit_graph g("static:1", 20000, timeout_ms, "bus", /*heartbeat_ms=*/50, /*chunk_steps=*/32);
  const auto s = serve(g, {}, wl);
  fs::remove(wl);
  EXPECT_EQ(s.metrics.done, 2);
  EXPECT_EQ(s.metrics.failed, 0);
  EXPECT_EQ(s.metrics.worker_deaths, 0);
  for (const auto& [tag, d] : s.done) EXPECT_EQ(d.retries, 0) << tag;
  // The test means something only if a task really outlasted the timeout (model clock = wall
  // clock at speedup 1).
  std::int64_t longest_us = 0;
  std::ifstream in(g.task_log);
  const std::regex us(R"( us=(\d+)$)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, us)) longest_us = std::max<std::int64_t>(longest_us, std::stoll(m[1]));
  }
  std::printf("longest task: %.0f ms (heartbeat timeout %d ms)\n", longest_us / 1000.0, timeout_ms);
  EXPECT_GT(longest_us, 2 * timeout_ms * 1000) << "the tasks are too short to show anything: make them larger";
}

// The same promise on GPUs: `gpu` workers (one GPU each, a cuda-ipc World set up through the
// bus), static on every GPU against edf-best-fit (degree 1 or all GPUs per chunk, requests moving
// between groups), every result equal to a single-GPU degree-1 denoise (GPU bits, not the CPU's);
// and edf-best-fit again over an NCCL World (what several nodes use: the all-to-all exchange).
TEST(live_gpu_numerics, a_request_gives_the_same_bits_on_gpu_workers_however_it_was_parallelised) {
  const int n = std::min(dit::gpu_count(), cpu_workers);
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs, found " << dit::gpu_count();
  const auto ref = reference_hashes(true, n);
  ASSERT_EQ(ref.size(), 8u);
  served fixed, elastic, over_nccl;
  std::map<std::uint64_t, std::vector<int>> elastic_degrees;
  {
    dit_graph g("static:" + std::to_string(n), 20000, 20000, "bus", 200, 2, "gpu", n);
    fixed = serve(g);
  }
  {
    dit_graph g("edf-best-fit", 20000, 20000, "bus", 200, 2, "gpu", n, "nccl");
    over_nccl = serve(g);
  }
  {
    dit_graph g("edf-best-fit", 20000, 20000, "bus", 200, 2, "gpu", n);
    elastic = serve(g);
    elastic_degrees = g.denoise_degrees();
  }
  expect_all_done(fixed, ref, "gpu, static");
  expect_all_done(elastic, ref, "gpu, edf-best-fit");
  expect_all_done(over_nccl, ref, "gpu, edf-best-fit, nccl");
  int moved = 0;
  for (const auto& [tag, d] : elastic.done) moved += d.regroupings > 0;
  for (const auto& [rid, ds] : elastic_degrees) {
    std::string s;
    for (int d : ds) s += std::to_string(d) + " ";
    std::printf("gpu edf-best-fit request %llu denoise chunk degrees: %s\n", static_cast<unsigned long long>(rid),
                s.c_str());
  }
  std::printf("gpu: %d of %zu requests regrouped under edf-best-fit\n", moved, elastic.done.size());
}

}  // namespace
}  // namespace gfdit
