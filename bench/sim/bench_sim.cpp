// Simulator speed. The acceptance target: a 64-GPU, 10,000-request simulation in under 10 s on
// one core. Runs every shipped mix under the baseline (static) and the elastic policy
// (edf-best-fit) at a sustainable load and at overload (where queues, and so the policy's
// per-event work, are longest), prints wall time, events per second and the ratio of the two
// policies, and exits 1 if any run misses the target.
//   bench_sim [requests=10000] [gpus=64] [repeats=3]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "actors/sim/simulator.hpp"

using namespace gfdit::sim;

int main(int argc, char** argv) {
  const std::int64_t requests = argc > 1 ? std::atoll(argv[1]) : 10000;
  const std::int32_t gpus = argc > 2 ? std::atoi(argv[2]) : 64;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  const double target_s = 10.0;
  bool ok = true;
  fmt::print("{:<12} {:>6} {:<14} {:>10} {:>10} {:>12} {:>10}\n", "workload", "load", "policy", "median s", "virtual h",
             "policy calls", "vs static");
  for (auto name : {"video-mix", "image-mix", "bursty-mix"}) {
    auto w = load_workload(std::string(GFDIT_SOURCE_DIR) + "/launch/workloads/" + name + ".yaml");
    if (!w) {
      fmt::print(stderr, "{}\n", w.err().what);
      return 1;
    }
    for (double load : {0.8, 1.5}) {
      double static_s = 0;
      for (auto pol : {"static", "edf-best-fit"}) {
        sim_options o;
        o.gpus = gpus;
        o.policy = pol;
        o.requests = requests;
        o.load = load;
        std::vector<double> times;
        run_metrics last;
        for (int r = 0; r < repeats; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          auto m = simulate(*w, o);
          times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          if (!m) {
            fmt::print(stderr, "{}\n", m.err().what);
            return 1;
          }
          last = *m;
        }
        std::sort(times.begin(), times.end());
        const double med = times[times.size() / 2];
        if (std::string(pol) == "static") static_s = med;
        ok = ok && times.back() < target_s && last.done + last.rejected + last.failed + last.cancelled == requests;
        fmt::print("{:<12} {:>6.2f} {:<14} {:>10.3f} {:>10.1f} {:>12} {:>10}\n", name, load, pol, med,
                   last.makespan_s / 3600, last.policy_calls,
                   static_s > 0 ? fmt::format("{:.2f}x", med / static_s) : "-");
      }
    }
  }
  fmt::print("target: every run of {} requests on {} GPUs under {:.0f} s: {}\n", requests, gpus, target_s,
             ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
