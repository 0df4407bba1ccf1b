// gfdit_coll_worker: one rank of a collectives test world. The test binaries start N of these
// as real processes: gfdit_coll_worker <scenario> <rank> <size> <rendezvous dir> <backend>
// Exit code 0: every check passed; otherwise the number of failed checks (messages on stderr).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/collectives/world.hpp"
#include "tests/kernels/collectives/worker_common.hpp"

namespace gfdit::coll::testing {
int scenario_all(World& w, checker& ck);
int scenario_overlap(World& w, checker& ck);
int scenario_cycles(World& w, checker& ck);
int scenario_dead(World& w, checker& ck);
#if GFDIT_COLL_HAVE_CUDA
int scenario_gpu(World& w, rendezvous& rv, checker& ck);
#endif
}  // namespace gfdit::coll::testing

int main(int argc, char** argv) {
  using namespace gfdit::coll;
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s <scenario> <rank> <size> <dir> <host|cuda-ipc|nccl>\n", argv[0]);
    return 2;
  }
  const std::string_view scenario = argv[1], be = argv[5];
  const int rank = std::atoi(argv[2]), size = std::atoi(argv[3]);
  testing::checker ck{rank, 0};
  file_rendezvous rv(argv[4], rank, size);
  world_options opts;
  opts.backend = be == "cuda-ipc" ? backend_kind::cuda_ipc : be == "nccl" ? backend_kind::nccl : backend_kind::host;
  opts.buffer_bytes = 64 * 1024;  // small, so the tests exercise rounds
  opts.timeout = std::chrono::milliseconds(scenario == "dead" ? 500 : 20000);
  opts.device = opts.backend == backend_kind::host ? -1 : rank;
  if (scenario == "gpu") {
    opts.buffer_bytes = std::size_t{4} << 20;
    // Optional 6th argument: "plain" turns off the LL protocol, deferred done and chunked
    // staging (the pull protocol everywhere); "ll" sends every exchange of known size (all of
    // this scenario's, up to 6 MiB per rank x 7 peers on 8 GPUs) by LL; otherwise the defaults
    // (LL up to 1 MiB pushed per rank) with small
    // thresholds that make the larger cases use deferred done and chunked staging.
    const std::string_view mode = argc > 6 ? std::string_view(argv[6]) : std::string_view();
    const bool plain = mode == "plain";
    opts.defer_done = !plain;
    opts.pipeline_min_bytes = plain ? 0 : std::size_t{256} << 10;
    opts.pipeline_chunk = std::size_t{64} << 10;
    if (plain) opts.ll_max_bytes = 0;
    if (mode == "ll") opts.ll_max_bytes = std::size_t{48} << 20;
  }
  auto w = World::create(rv, opts);
  if (!w) {
    std::fprintf(stderr, "[rank %d] World::create: %s\n", rank, w.err().what.c_str());
    return 100;
  }
  int rc = 0;
  if (scenario == "all")
    rc = testing::scenario_all(**w, ck);
  else if (scenario == "overlap")
    rc = testing::scenario_overlap(**w, ck);
  else if (scenario == "cycles")
    rc = testing::scenario_cycles(**w, ck);
  else if (scenario == "dead")
    rc = testing::scenario_dead(**w, ck);
#if GFDIT_COLL_HAVE_CUDA
  else if (scenario == "gpu")
    rc = testing::scenario_gpu(**w, rv, ck);
#endif
  else {
    std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
  }
  const int failures = ck.failures + rc;
  if (std::getenv("GFDIT_COLL_VERBOSE"))
    std::fprintf(stderr, "[rank %d] %s: %ld checks, %d failed\n", rank, argv[1], ck.checks, failures);
  return failures > 99 ? 99 : failures;
}
