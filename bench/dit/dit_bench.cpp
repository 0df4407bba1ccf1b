// Per-block and per-step latency of the stock DiT configs on one GPU (degree 1), eager launches
// and CUDA-graph replay, beside the PyTorch block peer (its JSON lines, produced in the same
// device run by peers_dit_block.py, are read from --peer). Writes a cost-model profile (the
// YAML the scheduler's cost_model reads) fitted from the measured step times.
//
//   gfdit_dit_bench --peer peer.jsonl --profile dit-measured.yaml [--iters 20]
//
// Ulysses across processes (one per GPU, started together, e.g. by run_ulysses.sh):
//   gfdit_dit_bench --ulysses-rank R --ulysses-size N --ulysses-dir DIR [--configs ...]
// Rank 0 times the degree-1 step on its GPU, then every rank joins a cuda-ipc World and times
// the same step at degree N for real (its token shard, both all-to-alls per block); rank 0
// prints both and the speed-up, beside one rank's compute alone (no all-to-all) as the bound.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/collectives/world.hpp"
#include "kernels/dit/config.hpp"
#include "kernels/dit/gpu_forward.hpp"

using namespace gfdit;

namespace {

int ulysses_bench(int rank, int size, const std::string& dir, const std::vector<std::string>& names,
                  const std::vector<std::string>& exchanges, int iters) {
  coll::file_rendezvous rv(dir, rank, size);
  coll::world_options o;
  o.backend = coll::backend_kind::cuda_ipc;
  o.device = rank;
  o.channels = 1;
  // The direct exchange's window (video-dit-5b-standin at degree 2: 66 MiB), or the all-to-all's q/k/v
  // of a rank's shard (51 MiB) in one round, published from the symmetric area without staging.
  o.buffer_bytes = std::size_t{96} << 20;
  o.timeout = std::chrono::milliseconds(120000);
  auto w = coll::World::create(rv, o);
  if (!w) {
    std::fprintf(stderr, "[rank %d] world: %s\n", rank, w.err().what.c_str());
    return 1;
  }
  std::vector<std::int32_t> members;
  for (int i = 0; i < size; ++i) members.push_back(i);
  auto g = (*w)->form(members, 1);
  if (!g) {
    std::fprintf(stderr, "[rank %d] %s\n", rank, g.err().what.c_str());
    return 1;
  }
  if (rank == 0)
    std::printf(
        "Ulysses across %d processes/GPUs (cuda-ipc World), batch 1, CUDA graph replay (eager in brackets):\n"
        "%-16s %6s %-10s | %18s | %18s | %7s | %12s %7s\n",
        size, "config", "tokens", "exchange", "degree 1 step ms", "real Ulysses step ms", "speedup", "rank compute",
        "bound");
  for (const auto& name : names) {
    auto c = dit::stock_config(name);
    if (!c) {
      std::fprintf(stderr, "%s\n", c.err().what.c_str());
      return 1;
    }
    auto m = dit::gpu_model::generate(*c, 1, rank);
    if (!m) {
      std::fprintf(stderr, "[rank %d] %s: %s\n", rank, name.c_str(), m.err().what.c_str());
      return 1;
    }
    const long T = c->seq_tokens();
    dit::gpu_timing d1{}, comp{};
    if (rank == 0) {  // before the others start their ranks' work: alone on its GPU
      auto r = (*m)->time_step(1, T, iters);
      if (!r) {
        std::fprintf(stderr, "%s degree 1: %s\n", name.c_str(), r.err().what.c_str());
        return 1;
      }
      d1 = *r;
      if (T % size == 0)
        if (auto r2 = (*m)->time_rank_compute(1, T, size, true, iters); r2) comp = *r2;
    }
    for (const auto& ex : exchanges) {
      (*m)->set_ulysses_exchange(ex == "direct" ? dit::gpu_model::ulysses_exchange::direct
                                                : dit::gpu_model::ulysses_exchange::all_to_all);
      auto du = (*m)->time_ulysses(1, dit::sp_group{w->get(), *g}, true, iters);
      if (!du) {
        std::fprintf(stderr, "[rank %d] %s degree %d: %s\n", rank, name.c_str(), size, du.err().what.c_str());
        return 1;
      }
      if (rank == 0) {
        std::printf("%-16s %6ld %-10s | %8.2f (%7.2f) | %8.2f (%7.2f) | %6.2fx | %12.2f %6.2fx\n", name.c_str(), T,
                    ex.c_str(), d1.graph_ms, d1.eager_ms, du->graph_ms, du->eager_ms, d1.graph_ms / du->graph_ms,
                    comp.graph_ms, comp.graph_ms > 0 ? d1.graph_ms / comp.graph_ms : 0.0);
        nlohmann::json row = {{"config", name},
                              {"tokens", T},
                              {"degree", size},
                              {"exchange", ex},
                              {"d1_step_graph_ms", d1.graph_ms},
                              {"d1_step_eager_ms", d1.eager_ms},
                              {"ulysses_step_graph_ms", du->graph_ms},
                              {"ulysses_step_eager_ms", du->eager_ms},
                              {"speedup_graph", d1.graph_ms / du->graph_ms},
                              {"speedup_eager", d1.eager_ms / du->eager_ms},
                              {"rank_compute_step_graph_ms", comp.graph_ms}};
        std::printf("JSON %s\n", row.dump().c_str());
      } else {
        std::printf("  [rank %d] %s degree %d (%s) step %.2f ms graph, %.2f ms eager\n", rank, name.c_str(), size,
                    ex.c_str(), du->graph_ms, du->eager_ms);
      }
      std::fflush(stdout);
    }
    // Where the degree-2 block goes (direct exchange, eager, per stage; rank 0's view).
    (*m)->set_ulysses_exchange(dit::gpu_model::ulysses_exchange::direct);
    auto parts = (*m)->profile_block(1, T, 10, dit::sp_group{w->get(), *g});
    if (!parts) {
      std::fprintf(stderr, "[rank %d] %s profile: %s\n", rank, name.c_str(), parts.err().what.c_str());
      return 1;
    }
    if (rank == 0) {
      double total = 0;
      std::printf("  %s degree %d block stages (direct, eager, ms):", name.c_str(), size);
      for (const auto& [stage, ms] : *parts) std::printf(" %s %.3f", stage.c_str(), ms), total += ms;
      std::printf(" | total %.3f\n", total);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DiT block/step latency beside PyTorch"};
  std::string peer_path, profile_path = "dit-measured.yaml";
  int iters = 20, step_iters = 5;
  std::vector<std::string> names = {"dit-s-2",           "dit-xl-2-256",         "dit-xl-2-512",
                                    "mmdit-12b-standin", "video-dit-5b-standin", "video-dit-5b-standin-720p"};
  app.add_option("--peer", peer_path, "JSON lines from peers_dit_block.py");
  app.add_option("--profile", profile_path, "cost-model profile to write");
  app.add_option("--iters", iters);
  app.add_option("--step-iters", step_iters);
  app.add_option("--configs", names);
  int ul_rank = -1, ul_size = 0;
  std::string ul_dir;
  app.add_option("--ulysses-rank", ul_rank, "this process's rank (Ulysses mode)");
  app.add_option("--ulysses-size", ul_size, "processes (one per GPU) = the Ulysses degree");
  app.add_option("--ulysses-dir", ul_dir, "rendezvous folder, fresh per run");
  std::vector<std::string> exchanges = {"direct", "all_to_all"};
  app.add_option("--ulysses-exchange", exchanges, "direct and/or all_to_all, each timed in turn")
      ->check(CLI::IsMember({"direct", "all_to_all"}));
  CLI11_PARSE(app, argc, argv);
  if (ul_rank >= 0) return ulysses_bench(ul_rank, ul_size, ul_dir, names, exchanges, step_iters);

  if (!dit::gpu_available()) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  // Peer figures keyed by (hidden, heads, tokens).
  std::map<std::tuple<int, int, long>, std::pair<double, double>> peer;
  if (!peer_path.empty()) {
    std::ifstream f(peer_path);
    std::string line;
    while (std::getline(f, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.contains("eager_ms"))
          peer[{j["hidden"].get<int>(), j["heads"].get<int>(), j["tokens"].get<long>()}] = {
              j["eager_ms"].get<double>(), j["graph_ms"].get<double>()};
      } catch (...) {
      }
    }
  }
  std::printf("%-18s %6s | %9s %9s | %9s %9s | %8s %8s | %10s %10s %10s\n", "config", "tokens", "blk eager",
              "blk graph", "pt eager", "pt graph", "vs eager", "vs graph", "step ms", "half-tok", "fit c_us");
  std::ofstream prof(profile_path);
  prof << "# Measured by bench/dit/gfdit_dit_bench (one GPU, batch 1, degree 1, CUDA graph replay).\n"
          "# step: t(T, d) = b_us*T + (bp_us*T + c_us*T^2)/d, fitted from the step at T and T/2 tokens and one\n"
          "# rank's degree-2 compute (no all-to-all: comm terms are not measured here).\nmodels:\n";
  for (const auto& name : names) {
    const bool hd = name == "video-dit-5b-standin-720p";
    auto c = dit::stock_config(hd ? "video-dit-5b-standin" : name);
    if (!c) {
      std::fprintf(stderr, "%s\n", c.err().what.c_str());
      return 1;
    }
    if (hd) {
      auto c720 = dit::with_video_shape(*c, 1280, 704, 81);
      if (!c720) {
        std::fprintf(stderr, "%s\n", c720.err().what.c_str());
        return 1;
      }
      *c = *c720;
      c->name = name;
    }
    auto m = dit::gpu_model::generate(*c, 1);
    if (!m) {
      std::printf("%s: %s\n", name.c_str(), m.err().what.c_str());
      continue;
    }
    const long T = c->seq_tokens();
    auto blk = (*m)->time_block(1, T, iters);
    if (!blk) {
      std::printf("%s block: %s\n", name.c_str(), blk.err().what.c_str());
      continue;
    }
    if (auto parts = (*m)->profile_block(1, T, 10); parts) {
      std::printf("  %s stages (ms, eager):", name.c_str());
      for (const auto& [stage, ms] : *parts) std::printf(" %s %.4f", stage.c_str(), ms);
      std::printf("\n");
    }
    auto step = (*m)->time_step(1, T, step_iters);
    if (!step) {
      std::printf("%s step: %s\n", name.c_str(), step.err().what.c_str());
      continue;
    }
    auto half = (*m)->time_step(1, T / 2, step_iters);
    if (!half) {
      std::printf("%s half step: %s\n", name.c_str(), half.err().what.c_str());
      continue;
    }
    auto blk2 = (*m)->time_rank_compute(1, T, 2, false, iters);
    auto step2 = (*m)->time_rank_compute(1, T, 2, true, step_iters);
    if (!blk2 || !step2) {
      std::printf("%s degree-2 compute: %s\n", name.c_str(), (!blk2 ? blk2.err() : step2.err()).what.c_str());
      continue;
    }
    const auto it = peer.find({c->hidden, c->heads, T});
    const double pe = it == peer.end() ? 0 : it->second.first, pg = it == peer.end() ? 0 : it->second.second;
    // Fit: t(T, d) = b*T + (bp*T + c*T^2)/d. b from degree 1 vs the degree-2 rank compute at T,
    // c and bp from the split part at T and T/2.
    const double t1 = step->graph_ms * 1000, t2 = step2->graph_ms * 1000, th = half->graph_ms * 1000;
    const double b = std::max(0.0, (2 * t2 - t1) / T);
    const double s1 = t1 - b * T, sh = th - b * T / 2;
    double cc = 2 * (s1 - 2 * sh) / (static_cast<double>(T) * T), bp = (s1 - cc * T * T) / T;
    if (cc < 0) {
      cc = 0;
      bp = s1 / T;
    }
    if (bp < 0) {
      bp = 0;
      cc = std::max(0.0, s1 / (static_cast<double>(T) * T));
    }  // no gain from splitting
    std::printf(
        "%-18s %6ld | %9.4f %9.4f | %9.4f %9.4f | %8.3f %8.3f | %10.3f %10.3f %10.3g | d2 blk %.4f step %.3f x%.2f\n",
        name.c_str(), T, blk->eager_ms, blk->graph_ms, pe, pg, pe > 0 ? blk->graph_ms / pe : 0.0,
        pg > 0 ? blk->graph_ms / pg : 0.0, step->graph_ms, half->graph_ms, cc, blk2->graph_ms, step2->graph_ms,
        step->graph_ms / step2->graph_ms);
    nlohmann::json row = {{"config", name},
                          {"tokens", T},
                          {"block_eager_ms", blk->eager_ms},
                          {"block_graph_ms", blk->graph_ms},
                          {"peer_eager_ms", pe},
                          {"peer_graph_ms", pg},
                          {"step_eager_ms", step->eager_ms},
                          {"step_graph_ms", step->graph_ms},
                          {"half_tokens_step_graph_ms", half->graph_ms},
                          {"d2_rank_block_graph_ms", blk2->graph_ms},
                          {"d2_rank_step_graph_ms", step2->graph_ms},
                          {"d2_compute_speedup", step->graph_ms / step2->graph_ms}};
    std::printf("JSON %s\n", row.dump().c_str());
    std::fflush(stdout);
    prof << "  - model: " << name << "\n    description: measured, " << c->depth << " blocks, hidden " << c->hidden
         << ", " << T << " tokens\n    stages:\n      step: {a_us: 0, b_us: " << b << ", bp_us: " << bp
         << ", c_us: " << cc << "}\n";
  }
  return 0;
}
