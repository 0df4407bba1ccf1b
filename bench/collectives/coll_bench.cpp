// gfdit_coll_bench: group-free collectives against NCCL, in the same run, one process per GPU.
//   gfdit_coll_bench [--gpus N] [--sizes 65536,...] [--iters 20] [--out results.jsonl]
// The parent re-executes itself once per GPU (--rank r). Rank 0 prints a table and, with
// --out, one JSON object per line. Measured beside each other:
//  - group formation (World::form) p50/p99, alone and with its first barrier, against
//    ncclCommInitRank and ncclCommSplit (each with its first all_reduce);
//  - all_to_all and all_gather per size (bytes per rank, the send buffer of each rank) on the
//    cuda-ipc backend (staged, and from the symmetric buffer) and the nccl backend, against
//    ncclAlltoAll / ncclAllGather on a dedicated communicator;
//  - reshard bandwidth; with >= 4 GPUs, two disjoint halves running concurrently.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>
#include <nccl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/collectives/world.hpp"

extern char** environ;
using namespace gfdit;
using namespace gfdit::coll;
using clk = std::chrono::steady_clock;

#define B_CUDA(x)                                                   \
  do {                                                              \
    const cudaError_t e_ = (x);                                     \
    if (e_ != cudaSuccess) {                                        \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); \
      std::exit(3);                                                 \
    }                                                               \
  } while (0)
#define B_NCCL(x)                                                   \
  do {                                                              \
    const ncclResult_t e_ = (x);                                    \
    if (e_ != ncclSuccess) {                                        \
      std::fprintf(stderr, "%s: %s\n", #x, ncclGetErrorString(e_)); \
      std::exit(4);                                                 \
    }                                                               \
  } while (0)
#define B_OK(x)                                                    \
  do {                                                             \
    const auto& r_ = (x);                                          \
    if (!r_.ok()) {                                                \
      std::fprintf(stderr, "%s: %s\n", #x, r_.err().what.c_str()); \
      std::exit(5);                                                \
    }                                                              \
  } while (0)

namespace {

struct args_t {
  int gpus = 0, rank = -1, iters = 50;
  std::vector<std::size_t> sizes = {64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20, 64u << 20, 256u << 20};
  std::string dir, out;
};

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

struct reporter {
  int rank;
  std::FILE* out = nullptr;
  void row(const std::string& json, const std::string& text) {
    if (rank != 0) return;
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
    if (out) {
      std::fprintf(out, "%s\n", json.c_str());
      std::fflush(out);
    }
  }
};

std::string fmt(const char* f, auto... a) {
  char b[512];
  std::snprintf(b, sizeof b, f, a...);
  return b;
}

int rank_main(const args_t& a) {
  const int rank = a.rank, n = a.gpus;
  B_CUDA(cudaSetDevice(rank));
  reporter rep{rank, nullptr};
  if (rank == 0 && !a.out.empty()) rep.out = std::fopen(a.out.c_str(), "a");
  cudaDeviceProp prop{};
  B_CUDA(cudaGetDeviceProperties(&prop, rank));
  int nccl_v = 0;
  ncclGetVersion(&nccl_v);
  file_rendezvous rv(a.dir, rank, n);
  const std::size_t max_size = *std::max_element(a.sizes.begin(), a.sizes.end());
  world_options wo;
  wo.backend = backend_kind::cuda_ipc;
  wo.channels = 2;
  wo.buffer_bytes = std::max<std::size_t>(max_size * static_cast<std::size_t>(n), 64u << 20);  // one round
  wo.device = rank;
  wo.timeout = std::chrono::seconds(15);  // a hang becomes an error, not a stuck run
  auto t0 = clk::now();
  auto wi = World::create(rv, wo);
  B_OK(wi);
  const double ipc_init_ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
  world_options wn = wo;
  wn.backend = backend_kind::nccl;
  wn.channels = 1;
  t0 = clk::now();
  auto wnc = World::create(rv, wn);
  B_OK(wnc);
  const double nccl_world_ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
  world_options wp = wo;  // the pull protocol at every size (LL off), waiting for done at its end
  wp.defer_done = false;
  wp.pipeline_min_bytes = 0;
  wp.ll_max_bytes = 0;
  auto wpl = World::create(rv, wp);
  B_OK(wpl);
  World& wplain = **wpl;
  world_options wl = wo;  // the LL protocol up to 16 MiB pushed per rank (where LL and pull cross over)
  wl.ll_max_bytes = std::size_t{16} << 20;
  auto wll = World::create(rv, wl);
  B_OK(wll);
  World& wllw = **wll;
  World& w = **wi;
  World& wn_ = **wnc;
  cudaStream_t st;
  B_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  const stream_ref s{st};
  // The dedicated NCCL communicator for the native collectives.
  auto new_comm = [&](ncclComm_t* c) {
    ncclUniqueId id{};
    if (rank == 0) B_NCCL(ncclGetUniqueId(&id));
    auto ids = rv.all_gather(std::string(reinterpret_cast<const char*>(&id), sizeof id), std::chrono::seconds(60));
    if (!ids) std::exit(6);
    std::memcpy(&id, (*ids)[0].data(), sizeof id);
    const auto t = clk::now();
    B_NCCL(ncclCommInitRank(c, n, id, rank));
    return t;
  };
  float* one = nullptr;
  B_CUDA(cudaMalloc(&one, sizeof(float)));
  B_CUDA(cudaMemset(one, 0, sizeof(float)));
  ncclComm_t ref;
  new_comm(&ref);
  rep.row(
      fmt(R"({"bench":"setup","device":"%s","gpus":%d,"nccl":%d,"cuda_ipc_world_ms":%.2f,"nccl_backend_world_ms":%.2f})",
          prop.name, n, nccl_v, ipc_init_ms, nccl_world_ms),
      fmt("# %s x%d, NCCL %d; World::create cuda-ipc %.1f ms, nccl %.1f ms", prop.name, n, nccl_v, ipc_init_ms,
          nccl_world_ms));
  std::vector<std::int32_t> all(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) all[static_cast<std::size_t>(r)] = r;
  auto world_group = w.form(all, 1);
  B_OK(world_group);
  const Group& G = *world_group;
  auto sync_all = [&] {
    B_OK(w.barrier(G, s));
    B_OK(w.synchronize(s));
  };

  // ---- formation ----
  rep.row("", "\n## group formation (p50 / p99, microseconds)");
  for (int k = 2; k <= n; k *= 2) {
    // Every rank numbers the epochs alike, members of the k-group or not, so the groups of the
    // next k agree.
    std::uint64_t epoch = 100 + static_cast<std::uint64_t>(k) * 1000000;
    std::span<const std::int32_t> mem(all.data(), static_cast<std::size_t>(k));
    std::vector<double> form_us, first_us;
    for (int i = 0; i < 20000; ++i) {
      const auto a0 = clk::now();
      auto g = w.form(mem, ++epoch);
      const auto a1 = clk::now();
      if (!g) std::exit(7);
      form_us.push_back(std::chrono::duration<double, std::micro>(a1 - a0).count());
    }
    if (rank < k) {
      for (int i = 0; i < 200; ++i) {
        const auto a0 = clk::now();
        auto g = w.form(mem, ++epoch);
        B_OK(w.barrier(*g, s));
        B_OK(w.synchronize(s));
        first_us.push_back(std::chrono::duration<double, std::micro>(clk::now() - a0).count());
      }
    }
    sync_all();
    // NCCL: a new communicator over the k ranks (ncclCommSplit of the dedicated one), and a fresh
    // world communicator (ncclCommInitRank), each with its first all_reduce.
    std::vector<double> split_ms, init_ms;
    for (int i = 0; i < 3; ++i) {
      sync_all();
      ncclComm_t sub = nullptr;
      const auto a0 = clk::now();
      B_NCCL(ncclCommSplit(ref, rank < k ? 0 : NCCL_SPLIT_NOCOLOR, rank, &sub, nullptr));
      if (sub) {
        B_NCCL(ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, sub, st));
        B_CUDA(cudaStreamSynchronize(st));
      }
      split_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - a0).count());
      if (sub) ncclCommDestroy(sub);
    }
    if (k == n)
      for (int i = 0; i < 3; ++i) {
        sync_all();
        ncclComm_t c;
        const auto a0 = new_comm(&c);
        B_NCCL(ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, c, st));
        B_CUDA(cudaStreamSynchronize(st));
        init_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - a0).count());
        ncclCommDestroy(c);
      }
    const double f50 = pct(form_us, 0.5), f99 = pct(form_us, 0.99);
    const double b50 = first_us.empty() ? 0 : pct(first_us, 0.5), b99 = first_us.empty() ? 0 : pct(first_us, 0.99);
    const double s50 = pct(split_ms, 0.5), i50 = init_ms.empty() ? 0 : pct(init_ms, 0.5);
    rep.row(
        fmt(R"({"bench":"formation","k":%d,"form_p50_us":%.3f,"form_p99_us":%.3f,"form_barrier_p50_us":%.2f,"form_barrier_p99_us":%.2f,"nccl_split_p50_ms":%.2f,"nccl_init_p50_ms":%.2f,"split_over_form":%.0f})",
            k, f50, f99, b50, b99, s50, i50, s50 * 1e3 / f50),
        fmt("k=%d  form %.3f / %.3f us | form+first barrier %.1f / %.1f us | ncclCommSplit+allreduce %.1f ms%s | "
            "split/form = %.0fx",
            k, f50, f99, b50, b99, s50,
            init_ms.empty() ? "" : fmt(" | ncclCommInitRank+allreduce %.1f ms", i50).c_str(), s50 * 1e3 / f50));
  }

  // ---- collectives ----
  rep.row("",
          "\n## all_to_all / all_gather: time per call (us) and algorithm bandwidth (GB/s = bytes per rank / time)");
  rep.row("",
          "op          size      nccl-native        ipc(default)       ipc(symmetric)     ipc(pull)          "
          "ipc(LL<=16M)       nccl-backend       ipc/native  sym/native pull/native LL/native");
  void* sym = w.symmetric(0);
  for (std::size_t size : a.sizes) {
    const std::size_t total_out = size * static_cast<std::size_t>(n);
    void *in = nullptr, *out = nullptr;
    B_CUDA(cudaMalloc(&in, size));
    B_CUDA(cudaMalloc(&out, total_out));
    B_CUDA(cudaMemset(in, 1, size));
    B_CUDA(cudaMemcpy(sym, in, size, cudaMemcpyDeviceToDevice));
    cudaEvent_t e0, e1;
    B_CUDA(cudaEventCreate(&e0));
    B_CUDA(cudaEventCreate(&e1));
    const int iters = size >= (64u << 20) ? std::max(5, a.iters / 2) : a.iters;
    auto time_it = [&](auto&& fn) {
      for (int i = 0; i < 3; ++i) fn();
      B_CUDA(cudaStreamSynchronize(st));
      sync_all();
      B_CUDA(cudaEventRecord(e0, st));
      for (int i = 0; i < iters; ++i) fn();
      B_CUDA(cudaEventRecord(e1, st));
      B_CUDA(cudaEventSynchronize(e1));
      float ms = 0;
      B_CUDA(cudaEventElapsedTime(&ms, e0, e1));
      return 1e3 * ms / iters;  // us
    };
    for (int op = 0; op < 2; ++op) {
      const char* name = op == 0 ? "all_to_all" : "all_gather";
      const std::size_t chunk = size / static_cast<std::size_t>(n);
      double t_nat, t_ipc, t_sym, t_nb, t_pl, t_ll;
      auto Gp = wplain.form(all, 1);
      auto Gl = wllw.form(all, 1);
      if (op == 0) {
        t_nat = time_it([&] { B_NCCL(ncclAlltoAll(in, out, chunk, ncclUint8, ref, st)); });
        t_ipc = time_it([&] { B_OK(w.all_to_all(G, in, out, chunk, s)); });
        t_sym = time_it([&] { B_OK(w.all_to_all(G, sym, out, chunk, s)); });
        t_pl = time_it([&] { B_OK(wplain.all_to_all(*Gp, in, out, chunk, s)); });
        t_ll = size / static_cast<std::size_t>(n) * static_cast<std::size_t>(n - 1) <= wl.ll_max_bytes
                   ? time_it([&] { B_OK(wllw.all_to_all(*Gl, in, out, chunk, s)); })
                   : 0.0;
        t_nb = time_it([&] { B_OK(wn_.all_to_all(*wn_.form(all, 1), in, out, chunk, s)); });
      } else {
        t_nat = time_it([&] { B_NCCL(ncclAllGather(in, out, size, ncclUint8, ref, st)); });
        t_ipc = time_it([&] { B_OK(w.all_gather(G, in, out, size, s)); });
        t_sym = time_it([&] { B_OK(w.all_gather(G, sym, out, size, s)); });
        t_pl = time_it([&] { B_OK(wplain.all_gather(*Gp, in, out, size, s)); });
        t_ll = size * static_cast<std::size_t>(n - 1) <= wl.ll_max_bytes
                   ? time_it([&] { B_OK(wllw.all_gather(*Gl, in, out, size, s)); })
                   : 0.0;
        t_nb = time_it([&] { B_OK(wn_.all_gather(*wn_.form(all, 1), in, out, size, s)); });
      }
      B_OK(w.synchronize(s));
      auto gbs = [&](double us) { return static_cast<double>(size) / (us * 1e3); };
      rep.row(
          fmt(R"({"bench":"%s","bytes_per_rank":%zu,"gpus":%d,"nccl_us":%.2f,"ipc_us":%.2f,"ipc_sym_us":%.2f,"nccl_backend_us":%.2f,"ipc_pull_us":%.2f,"ipc_ll_us":%.2f,"nccl_GBps":%.1f,"ipc_GBps":%.1f,"ipc_sym_GBps":%.1f,"ipc_over_nccl_bw":%.3f,"sym_over_nccl_bw":%.3f})",
              name, size, n, t_nat, t_ipc, t_sym, t_nb, t_pl, t_ll, gbs(t_nat), gbs(t_ipc), gbs(t_sym), t_nat / t_ipc,
              t_nat / t_sym),
          fmt("%-10s %7.0fK  %8.1f us %6.1f  %8.1f us %6.1f  %8.1f us %6.1f  %8.1f us %6.1f  %8.1f us %6.1f  %8.1f us "
              "%6.1f   %5.2fx     %5.2fx     %5.2fx      %5.2fx",
              name, size / 1024.0, t_nat, gbs(t_nat), t_ipc, gbs(t_ipc), t_sym, gbs(t_sym), t_pl, gbs(t_pl), t_ll,
              t_ll > 0 ? gbs(t_ll) : 0.0, t_nb, gbs(t_nb), t_nat / t_ipc, t_nat / t_sym, t_nat / t_pl,
              t_ll > 0 ? t_nat / t_ll : 0.0));
    }
    // Reshard of a tensor of `size` bytes: the world's layout -> the reversed world's.
    if (n >= 2) {
      std::vector<std::int32_t> rev(all.rbegin(), all.rend());
      auto gr = w.form(rev, 9);
      const token_layout L{static_cast<std::int64_t>(size / 3072), 3072};
      const double t = time_it([&] { B_OK(w.reshard(G, *gr, L, in, out, s)); });
      const double moved = static_cast<double>(L.tokens) * 3072.0;
      rep.row(fmt(R"({"bench":"reshard","tensor_bytes":%.0f,"gpus":%d,"us":%.2f,"GBps":%.1f})", moved, n, t,
                  moved / (t * 1e3)),
              fmt("reshard    %7.0fK  world -> reversed world: %.1f us, %.1f GB/s (whole tensor / time)", moved / 1024,
                  t, moved / (t * 1e3)));
    }
    if (n >= 4 && size == (16u << 20)) {  // two disjoint halves at once, then the whole world
      std::vector<std::int32_t> lo(all.begin(), all.begin() + n / 2), hi(all.begin() + n / 2, all.end());
      auto gl = w.form(lo, 11, 0), gh = w.form(hi, 11, 1);
      const Group& mine = rank < n / 2 ? *gl : *gh;
      const double t = time_it([&] { B_OK(w.all_gather(mine, in, out, size, s)); });
      rep.row(fmt(R"({"bench":"halves_concurrent","bytes_per_rank":%zu,"gpus":%d,"us":%.2f})", size, n, t),
              fmt("halves    %7.0fK  {0..%d} and {%d..%d} all_gather concurrently: %.1f us", size / 1024.0, n / 2 - 1,
                  n / 2, n - 1, t));
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(in);
    cudaFree(out);
  }
  sync_all();
  ncclCommDestroy(ref);
  if (rep.out) std::fclose(rep.out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  args_t a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (k == "--gpus")
      a.gpus = std::stoi(next());
    else if (k == "--rank")
      a.rank = std::stoi(next());
    else if (k == "--dir")
      a.dir = next();
    else if (k == "--iters")
      a.iters = std::stoi(next());
    else if (k == "--out")
      a.out = next();
    else if (k == "--sizes") {
      a.sizes.clear();
      std::string v = next();
      for (std::size_t p = 0; p < v.size();) {
        auto q = v.find(',', p);
        a.sizes.push_back(std::stoull(v.substr(p, q - p)));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--gpus N] [--sizes a,b,..] [--iters N] [--out file.jsonl]\n", argv[0]);
      return 2;
    }
  }
  if (a.gpus <= 0) B_CUDA(cudaGetDeviceCount(&a.gpus));
  if (a.rank >= 0) return rank_main(a);
  if (a.gpus < 2) {
    std::fprintf(stderr, "needs at least 2 GPUs\n");
    return 2;
  }
  // Parent: one process per GPU, then wait for all.
  a.dir = (std::filesystem::temp_directory_path() / ("gfdit-coll-bench-" + std::to_string(::getpid()))).string();
  std::vector<pid_t> pids;
  for (int r = 0; r < a.gpus; ++r) {
    std::vector<std::string> args(argv, argv + argc);
    args.insert(args.end(), {"--gpus", std::to_string(a.gpus), "--rank", std::to_string(r), "--dir", a.dir});
    std::vector<char*> v;
    for (auto& x : args) v.push_back(x.data());
    v.push_back(nullptr);
    pid_t pid;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, v.data(), environ) != 0) return 3;
    pids.push_back(pid);
  }
  int rc = 0;
  for (auto p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
  }
  std::filesystem::remove_all(a.dir);
  return rc;
}
