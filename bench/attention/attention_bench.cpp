// Attention throughput, FlashAttention convention: fwd FLOPs = 4*B*H*S^2*D (halved when causal),
// bwd = 2.5x fwd. Shapes follow the DASH paper: B*S = total tokens, H*D = hidden size.
// With --peers FILE (JSON lines of bench/peers/peers_attention.py, run on the same device
// just before), prints ours / cuDNN, ours / FA2 and each schedule / ascending.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/attention/attention.hpp"

namespace ga = gfdit::attention;

#define CHECK_CUDA(expr)                                                                         \
  do {                                                                                           \
    cudaError_t e_ = (expr);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

namespace {

struct peer {
  double fwd = 0, bwd = 0;
  bool repeatable = false;
};
using peer_key = std::tuple<int, int, int, int, std::string, std::string>;  // B,H,S,D,mask,backend

std::map<peer_key, peer> read_peers(const std::string& path) {
  std::map<peer_key, peer> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("backend") || !j.contains("bwd_tflops")) continue;
    out[{j["B"], j["H"], j["S"], j["D"], j["mask"], j["backend"]}] =
        peer{j["fwd_tflops"], j["bwd_tflops"], j.value("bwd_bitwise_repeatable", false)};
  }
  return out;
}

std::vector<std::uint16_t> random_bits(std::size_t n, std::uint64_t seed) {
  // Uniform in [-2, 2): cheap, never zero-heavy (zeros time faster than real data).
  std::vector<std::uint16_t> v(n);
  std::uint64_t x = seed;
  for (auto& e : v) {
    x += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    e = ga::float_to_bf16(float(double(z >> 11) / double(1ull << 53) * 4.0 - 2.0));
  }
  return v;
}

template <class F>
double median_ms(F&& f, int iters) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f();
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> t;
  for (int i = 0; i < iters; ++i) {
    CHECK_CUDA(cudaEventRecord(a));
    f();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gfdit attention benchmark"};
  std::vector<int> seqlens{512, 1024, 2048, 4096, 8192, 16384}, dims{64, 128};
  std::vector<std::string> masks{"full", "causal"};
  int total = 16384, hidden = 2048, iters = 10;
  std::string peers_path, json_path;
  bool fwd_only = false;
  app.add_option("--seqlen", seqlens, "sequence lengths");
  app.add_option("--dim", dims, "head dims (64, 128)");
  app.add_option("--mask", masks, "full, causal");
  app.add_option("--total-tokens", total, "batch * seqlen");
  app.add_option("--hidden", hidden, "heads * head dim");
  app.add_option("--iters", iters, "timed iterations (median)");
  app.add_option("--peers", peers_path, "JSON lines from peers_attention.py");
  app.add_option("--json", json_path, "write our rows as JSON lines");
  app.add_flag("--fwd-only", fwd_only, "time the forward only");
  CLI11_PARSE(app, argc, argv);

  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs; kernels: %s\n", prop.name, prop.multiProcessorCount, ga::gpu_kernels());
  auto peers = peers_path.empty() ? std::map<peer_key, peer>{} : read_peers(peers_path);
  std::ofstream json;
  if (!json_path.empty()) json.open(json_path);

  std::vector<std::string> summary;
  for (const auto& mask_name : masks)
    for (int d : dims)
      for (int s : seqlens) {
        ga::problem p;
        p.batch = std::max(1, total / s);
        p.heads = hidden / d;
        p.seqlen = s;
        p.head_dim = d;
        p.mask = mask_name == "causal" ? ga::mask_kind::causal : ga::mask_kind::full;
        const std::size_t n = p.elements();
        void *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv, *ws;
        const std::size_t wsb = ga::backward_workspace_bytes(p);
        for (void** ptr : {&q, &k, &v, &o, &dout, &dq, &dk, &dv}) CHECK_CUDA(cudaMalloc(ptr, n * 2));
        CHECK_CUDA(cudaMalloc(&lse, p.rows() * 4));
        CHECK_CUDA(cudaMalloc(&ws, wsb));
        std::uint64_t seed = 1;
        for (void* ptr : {q, k, v, dout}) {
          auto h = random_bits(n, seed++);
          CHECK_CUDA(cudaMemcpy(ptr, h.data(), n * 2, cudaMemcpyHostToDevice));
        }
        const double flops =
            4.0 * p.batch * p.heads * double(s) * s * d * (p.mask == ga::mask_kind::causal ? 0.5 : 1.0);
        ga::forward_args fa{q, k, v, o, static_cast<float*>(lse), nullptr};
        auto fwd = [&] {
          if (auto r = ga::forward(p, fa); !r) {
            std::fprintf(stderr, "forward: %s\n", r.err().what.c_str());
            std::exit(1);
          }
        };
        const double fwd_ms = median_ms(fwd, iters);
        CHECK_CUDA(cudaGetLastError());
        std::map<std::string, double> bwd_tf;
        for (ga::schedule sc : ga::all_schedules) {
          if (!ga::schedule_supports(sc, p.mask) || fwd_only) continue;
          ga::backward_args ba;
          ba.q = q;
          ba.k = k;
          ba.v = v;
          ba.o = o;
          ba.dout = dout;
          ba.lse = static_cast<const float*>(lse);
          ba.dq = dq;
          ba.dk = dk;
          ba.dv = dv;
          ba.sched = sc;
          ba.workspace = ws;
          ba.workspace_bytes = wsb;
          auto bwd = [&] {
            if (auto r = ga::backward(p, ba); !r) {
              std::fprintf(stderr, "backward: %s\n", r.err().what.c_str());
              std::exit(1);
            }
          };
          const double ms = median_ms(bwd, iters);
          CHECK_CUDA(cudaGetLastError());
          bwd_tf[std::string(ga::to_string(sc))] = 2.5 * flops / ms / 1e9;
        }
        const double fwd_tf = flops / fwd_ms / 1e9;
        double best = 0;
        std::string best_name;
        for (auto& [name, tf] : bwd_tf)
          if (name != "atomic" && tf > best) best = tf, best_name = name;
        const peer cud = peers.count({p.batch, p.heads, s, d, mask_name, "cudnn"})
                             ? peers[{p.batch, p.heads, s, d, mask_name, "cudnn"}]
                             : peer{};
        const peer fa2 = peers.count({p.batch, p.heads, s, d, mask_name, "flash2"})
                             ? peers[{p.batch, p.heads, s, d, mask_name, "flash2"}]
                             : peer{};
        auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
        char line[512];
        std::snprintf(line, sizeof line,
                      "%-6s d%-3d S=%-5d B=%-2d H=%-2d | fwd %6.1f (cudnn %6.1f x%.2f, fa2 %6.1f x%.2f)"
                      " | bwd asc %6.1f desc %6.1f shift %6.1f spt %6.1f atomic %6.1f | best det %s %6.1f"
                      " (cudnn %6.1f x%.2f, fa2 %6.1f x%.2f) desc/asc x%.2f",
                      mask_name.c_str(), d, s, p.batch, p.heads, fwd_tf, cud.fwd, ratio(fwd_tf, cud.fwd), fa2.fwd,
                      ratio(fwd_tf, fa2.fwd), bwd_tf["ascending"], bwd_tf["descending"],
                      bwd_tf.count("shift") ? bwd_tf["shift"] : 0.0, bwd_tf["spt"], bwd_tf["atomic"], best_name.c_str(),
                      best, cud.bwd, ratio(best, cud.bwd), fa2.bwd, ratio(best, fa2.bwd),
                      ratio(bwd_tf["descending"], bwd_tf["ascending"]));
        std::puts(line);
        std::fflush(stdout);
        summary.push_back(line);
        if (json) {
          nlohmann::json j{{"B", p.batch},
                           {"H", p.heads},
                           {"S", s},
                           {"D", d},
                           {"mask", mask_name},
                           {"fwd_tflops", fwd_tf},
                           {"bwd_tflops", bwd_tf},
                           {"cudnn_fwd", cud.fwd},
                           {"cudnn_bwd", cud.bwd},
                           {"fa2_fwd", fa2.fwd},
                           {"fa2_bwd", fa2.bwd},
                           {"device", prop.name}};
          json << j.dump() << "\n";
        }
        for (void* ptr : {q, k, v, o, lse, dout, dq, dk, dv, ws}) CHECK_CUDA(cudaFree(ptr));
      }
  std::puts("\nTFLOP/s summary (ratios vs PyTorch SDPA peers from the same run):");
  for (auto& l : summary) std::puts(l.c_str());
  return 0;
}
