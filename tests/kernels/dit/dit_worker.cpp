// One rank of the DiT layout-invariance scenarios: `gfdit_dit_worker <scenario> <rank> <size>
// <dir> <config> <sampler>`. Every rank joins one host-backend World; trajectories then run on
// groups of it (degree 1, 2, 4, member orders permuted, and 1 -> 2 -> 1 in mid-trajectory), each
// ending with a reshard of the latent to rank 0, which compares the final latents bit for bit.
// The exit code is the number of failed checks.
//
// `gfdit_dit_worker gpu-ulysses <rank> <size> <dir> <config>`: one process per GPU join a
// cuda-ipc World and run the GPU forward for real at degree 2 (and 4 with 4 ranks); the output
// shards are gathered to rank 0, which compares them bit for bit with its single-GPU degree-1
// forward. With 3 or more ranks, degree 3 must be a clear error (it does not divide the heads).
// <config> is a stock name or a config's JSON (config.hpp's to_json).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/hash.hpp"
#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/collectives/world.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/sampler.hpp"

#ifdef GFDIT_DIT_WORKER_CUDA
#include <cuda_runtime.h>
#endif

using namespace gfdit;

namespace {

struct segment {
  std::vector<std::int32_t> members;
  int end_step;      // runs from the previous segment's end
  bool cfg = false;  // CFG-parallel: first half of `members` conditional, second half unconditional
};

int fail(int rank, const std::string& what) {
  std::fprintf(stderr, "[rank %d] FAILED: %s\n", rank, what.c_str());
  return 1;
}

std::uint64_t bits_hash(const std::vector<float>& v) {
  std::uint64_t h = 0;
  for (float x : v) {
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    h = splitmix64(h ^ u);
  }
  return h;
}

#ifdef GFDIT_DIT_WORKER_CUDA
int gpu_ulysses(int rank, int size, const char* dir, const std::string& config) {
  coll::file_rendezvous rv(dir, rank, size);
  coll::world_options opts;
  opts.backend = coll::backend_kind::cuda_ipc;
  opts.device = rank;
  opts.channels = 1;
  opts.buffer_bytes = std::size_t{64} << 20;  // the direct exchange's windows of the larger configs
  opts.timeout = std::chrono::milliseconds(60000);
  auto world = coll::World::create(rv, opts);
  if (!world) return fail(rank, "world: " + world.err().what);
  coll::World& w = **world;
  auto cfg = config.starts_with("{") ? dit::config_from_json(config) : dit::stock_config(config);
  if (!cfg) return fail(rank, cfg.err().what);
  auto m = dit::model::generate(*cfg, 5);
  if (!m) return fail(rank, m.err().what);
  auto g = dit::gpu_model::upload(*m, rank);
  if (!g) return fail(rank, g.err().what);
  // Two samples (the inputs of dit_gpu_test): full latents, timesteps, labels or text.
  const dit::model_config& c = *cfg;
  const int B = 2, P = c.patch_dim();
  const std::int64_t NI = c.image_tokens();
  const bool text = c.cond == dit::conditioning::text;
  std::vector<float> image, ts, txt;
  std::vector<int> labels;
  for (int b = 0; b < B; ++b) {
    dit::request r;
    r.seed = 17 + b;
    auto x = dit::initial_latent(c, r, 1, 0);
    image.insert(image.end(), x.begin(), x.end());
    ts.push_back(700.0f - 300.0f * b);
    if (text) {
      auto t = dit::seeded_text(c, 3 + b);
      txt.insert(txt.end(), t.begin(), t.end());
    } else {
      labels.push_back(b == 0 ? 2 : c.num_classes);
    }
  }
  std::vector<float> ref;
  if (rank == 0) {
    auto r = (*g)->forward(dit::forward_input{B, image, ts, labels, txt}, 1);
    if (!r) return fail(rank, "degree 1: " + r.err().what);
    ref = std::move(*r);
  }
  int failures = 0;
  std::uint64_t epoch = 1;
  cudaStream_t st = nullptr;
  if (cudaStreamCreate(&st) != cudaSuccess) return fail(rank, "cudaStreamCreate");
  // The direct exchange, and the all-to-all one without and with the head-chunk pipeline (the
  // bits must not depend on either).
  using exchange = dit::gpu_model::ulysses_exchange;
  const std::pair<exchange, int> modes[] = {
      {exchange::direct, 1}, {exchange::all_to_all, 1}, {exchange::all_to_all, 2}};
  for (const auto& [ex, chunks] : modes)
    for (int deg : {2, 3, 4}) {
      if (deg > size || (deg == 3 && (size == 2 || ex != exchange::direct))) continue;
      (*g)->set_ulysses_exchange(ex);
      if (auto r = (*g)->set_ulysses_chunks(chunks); !r) return fail(rank, r.err().what);
      std::vector<std::int32_t> members;
      for (int i = 0; i < deg; ++i) members.push_back(i);
      auto grp = w.form(members, epoch++);
      if (!grp) return fail(rank, grp.err().what);
      if (rank >= deg) continue;
      const auto sh = dit::token_shard(NI, deg, rank);
      std::vector<float> mine;
      for (int b = 0; b < B; ++b)
        mine.insert(mine.end(), image.begin() + (b * NI + sh.begin) * P,
                    image.begin() + (b * NI + sh.begin + sh.count) * P);
      auto out = (*g)->forward(dit::forward_input{B, mine, ts, labels, txt}, dit::sp_group{&w, *grp});
      if (deg == 3) {  // 4 heads: a clear error before any exchange
        if (out || out.err().code != errc::invalid_argument ||
            out.err().what.find("does not divide") == std::string::npos)
          failures += fail(rank, "degree 3 must be an invalid_argument naming the head count");
        continue;
      }
      if (!out) return fail(rank, "degree " + std::to_string(deg) + ": " + out.err().what);
      // Gather: every shard padded to the largest one (member 0's), [B][R][P] floats.
      const std::int64_t R = dit::token_shard(NI, deg, 0).count;
      const std::size_t bytes = static_cast<std::size_t>(B * R * P) * sizeof(float);
      std::vector<float> padded(static_cast<std::size_t>(B * R * P), 0.0f), all(padded.size() * deg);
      for (int b = 0; b < B; ++b)
        std::copy(out->begin() + b * sh.count * P, out->begin() + (b + 1) * sh.count * P, padded.begin() + b * R * P);
      void *ds = nullptr, *dr = nullptr;
      if (cudaMalloc(&ds, bytes) != cudaSuccess || cudaMalloc(&dr, bytes * deg) != cudaSuccess)
        return fail(rank, "cudaMalloc");
      cudaMemcpy(ds, padded.data(), bytes, cudaMemcpyHostToDevice);
      auto gr = w.gather(*grp, 0, ds, dr, bytes, coll::stream_ref{st});
      if (gr) gr = w.synchronize(coll::stream_ref{st});
      if (!gr) return fail(rank, "gather: " + gr.err().what);
      cudaMemcpy(all.data(), dr, bytes * deg, cudaMemcpyDeviceToHost);
      cudaFree(ds);
      cudaFree(dr);
      if (rank != 0) continue;
      std::size_t diff = 0;
      for (int j = 0; j < deg; ++j) {
        const auto sj = dit::token_shard(NI, deg, j);
        for (int b = 0; b < B; ++b)
          for (std::int64_t t = 0; t < sj.count * P; ++t) {
            const float a = all[(static_cast<std::size_t>(j) * B + b) * R * P + t],
                        e = ref[(b * NI + sj.begin) * P + t];
            diff += std::memcmp(&a, &e, 4) != 0;
          }
      }
      std::printf(
          "[rank 0] %s degree %d across %d GPUs, %s exchange, %d head chunk(s) asked: %zu of %zu output values differ "
          "from degree 1 (hash %016llx)\n",
          c.name.c_str(), deg, deg, ex == exchange::direct ? "direct" : "all-to-all", chunks, diff, ref.size(),
          static_cast<unsigned long long>(bits_hash(ref)));
      if (diff != 0)
        failures += fail(rank, c.name + " degree " + std::to_string(deg) + " is not bitwise equal to degree 1");
    }
  cudaStreamDestroy(st);
  return failures;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 6 && std::string(argv[1]) == "gpu-ulysses") {
#ifdef GFDIT_DIT_WORKER_CUDA
    return gpu_ulysses(std::atoi(argv[2]), std::atoi(argv[3]), argv[4], argv[5]);
#else
    return fail(std::atoi(argv[2]), "gpu-ulysses: built without CUDA");
#endif
  }
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s <scenario> <rank> <size> <dir> <config> <flow|ddim>\n", argv[0]);
    return 100;
  }
  const std::string scenario = argv[1];
  const int rank = std::atoi(argv[2]), size = std::atoi(argv[3]);
  const bool gpu = scenario == "gpu-invariance";  // the same trajectories, GPU forward, cuda-ipc World
#ifndef GFDIT_DIT_WORKER_CUDA
  if (gpu) return fail(rank, "gpu-invariance: built without CUDA");
#endif
  coll::file_rendezvous rv(argv[4], rank, size);
  coll::world_options opts;
  opts.backend = gpu ? coll::backend_kind::cuda_ipc : coll::backend_kind::host;
  opts.device = gpu ? rank : -1;
  opts.buffer_bytes = std::size_t{2} << 20;
  opts.channels = 3;  // two Ulysses groups side by side (CFG-parallel) and their pairs
  opts.timeout = std::chrono::milliseconds(60000);
  auto world = coll::World::create(rv, opts);
  if (!world) return fail(rank, "world: " + world.err().what);
  coll::World& w = **world;

  auto cfg = dit::stock_config(argv[5]);
  if (!cfg) return fail(rank, cfg.err().what);
  auto m = dit::model::generate(*cfg, 7);
  if (!m) return fail(rank, m.err().what);
  dit::request req;
  req.seed = 42;
  req.steps = 3;
  req.guidance = 4.0f;
  req.sampler = std::string(argv[6]) == "ddim" ? dit::sampler_kind::ddim : dit::sampler_kind::flow_euler;
  req.shift = req.sampler == dit::sampler_kind::flow_euler ? 3.0f : 1.0f;
  req.class_label = 3;
  if (cfg->cond == dit::conditioning::text) req.text = dit::seeded_text(*cfg, 5);

  // The model call and the latent's moves: host memory on a host World; on a GPU World the GPU
  // model's own denoise, and the reshard staged through device memory (reshard_on_device).
  std::function<result<void>(int, int, const dit::sp_group&, std::vector<float>&)> denoise =
      [&](int b, int e, const dit::sp_group& sp, std::vector<float>& shard) {
        return dit::denoise(*m, req, b, e, sp, shard);
      };
  std::function<result<std::vector<float>>(const coll::Group&, const coll::Group&, const std::vector<float>&)> move =
      [&](const coll::Group& from, const coll::Group& to, const std::vector<float>& shard) {
        return dit::reshard(w, from, to, *cfg, shard);
      };
#ifdef GFDIT_DIT_WORKER_CUDA
  std::unique_ptr<dit::gpu_model> gm;
  if (gpu) {
    auto g = dit::gpu_model::upload(*m, rank);
    if (!g) return fail(rank, g.err().what);
    gm = std::move(*g);
    denoise = [&](int b, int e, const dit::sp_group& sp, std::vector<float>& shard) {
      return gm->denoise(req, b, e, sp, shard);
    };
    move = [&](const coll::Group& from, const coll::Group& to, const std::vector<float>& shard) {
      return dit::reshard_on_device(w, from, to, *cfg, shard);
    };
  }
#endif

  std::uint64_t epoch = 1;
  auto make_layout = [&](const segment& seg) {
    const std::uint64_t e = epoch;
    epoch += 4;
    return dit::form_layout(w, seg.members, seg.cfg, e);
  };
  // Runs one trajectory over `segs`; returns the full latent on rank 0 (empty elsewhere).
  auto trajectory = [&](const std::vector<segment>& segs) -> result<std::vector<float>> {
    auto l = make_layout(segs[0]);
    if (!l) return l.err();
    std::vector<float> shard;
    if (l->active) shard = dit::initial_latent(*cfg, req, l->sp.degree(), l->sp.index());
    int step = 0;
    for (std::size_t s = 0; s < segs.size(); ++s) {
      if (l->active) {
        if (auto r = denoise(step, segs[s].end_step, l->sp, shard); !r) return r.err();
      }
      step = segs[s].end_step;
      const segment next_seg = s + 1 < segs.size() ? segs[s + 1] : segment{{0}, step};
      auto next = make_layout(next_seg);
      if (!next) return next.err();
      // The latent moves from the holder group; under CFG-parallel the new unconditional half
      // gets its copy by a second reshard from the same holder.
      std::vector<float> moved;
      if (l->holder.is_member() || next->holder.is_member()) {
        auto mv = move(l->holder, next->holder, shard);
        if (!mv) return mv.err();
        moved = std::move(*mv);
      }
      if (next->cfg_parallel && (l->holder.is_member() || next->uncond.is_member())) {
        auto mv = move(l->holder, next->uncond, shard);
        if (!mv) return mv.err();
        if (next->uncond.is_member()) moved = std::move(*mv);
      }
      shard = std::move(moved);
      l = std::move(next);
    }
    return rank == 0 ? shard : std::vector<float>{};
  };

  const int S = req.steps;
  std::vector<std::pair<std::string, std::vector<segment>>> runs;
  if (scenario == "invariance" || (gpu && size >= 4)) {
    runs = {
        {"degree 1", {{{0}, S}}},
        {"degree 2", {{{0, 1}, S}}},
        {"degree 4", {{{0, 1, 2, 3}, S}}},
        {"degree 4, members permuted", {{{2, 0, 3, 1}, S}}},
        {"degree 1 -> 2 -> 1", {{{0}, 1}, {{0, 1}, 2}, {{0}, S}}},
        {"degree 2 on ranks {3,2} -> 4 -> 1 on rank 1", {{{3, 2}, 1}, {{0, 1, 2, 3}, 2}, {{1}, S}}},
        {"CFG-parallel x degree 2", {{{0, 1, 2, 3}, S, true}}},
        {"CFG-parallel x 1 -> degree 4 -> CFG-parallel x 2 (swapped)",
         {{{0, 1}, 1, true}, {{0, 1, 2, 3}, 2}, {{2, 3, 1, 0}, S, true}}},
    };
  } else if (gpu && size < 4) {  // two GPUs: what fits two ranks
    runs = {
        {"degree 1", {{{0}, S}}},
        {"degree 2", {{{0, 1}, S}}},
        {"degree 2 on ranks {1,0}", {{{1, 0}, S}}},
        {"degree 1 -> 2 -> 1 on rank 1", {{{0}, 1}, {{0, 1}, 2}, {{1}, S}}},
        {"CFG-parallel x 1", {{{0, 1}, S, true}}},
        {"CFG-parallel x 1 -> degree 2 -> CFG-parallel x 1 (swapped)",
         {{{0, 1}, 1, true}, {{0, 1}, 2}, {{1, 0}, S, true}}},
    };
  } else {
    return fail(rank, "unknown scenario " + scenario);
  }
  if (size < (gpu ? 2 : 4)) return fail(rank, scenario + " needs " + (gpu ? "2" : "4") + " ranks");

  int failures = 0;
  std::vector<float> first;
  for (const auto& [name, segs] : runs) {
    auto out = trajectory(segs);
    if (!out) {
      failures += fail(rank, name + ": " + out.err().what);
      break;  // the other ranks would wait on a collective this rank skipped
    }
    if (rank != 0) continue;
    if (out->size() != static_cast<std::size_t>(cfg->image_tokens() * cfg->patch_dim())) {
      failures += fail(rank, name + ": final latent has the wrong size");
      continue;
    }
    bool finite = true;
    for (float x : *out) finite = finite && std::isfinite(x);
    if (!finite) failures += fail(rank, name + ": final latent is not finite");
    std::printf("%-44s hash %016llx\n", name.c_str(), static_cast<unsigned long long>(bits_hash(*out)));
    if (first.empty()) {
      first = *out;
    } else if (std::memcmp(first.data(), out->data(), first.size() * sizeof(float)) != 0) {
      std::size_t diff = 0;
      for (std::size_t i = 0; i < first.size(); ++i) diff += std::memcmp(&first[i], &(*out)[i], 4) != 0;
      failures += fail(rank, name + ": final latent differs from degree 1 in " + std::to_string(diff) + " of " +
                                 std::to_string(first.size()) + " elements");
    }
  }
  std::fflush(stdout);
  return failures > 100 ? 100 : failures;
}
