// cuda-ipc and nccl backends on real GPUs, one process per GPU (2 or more; skipped otherwise):
// results equal NCCL's own collectives bitwise.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include "tests/kernels/collectives/spawn.hpp"

namespace gfdit::coll::testing {
namespace {

int gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

void run_backend(const char* backend, const char* mode = "") {
  const int n = gpus();
  if (n < 2) GTEST_SKIP() << "needs 2 GPUs, found " << n;
  auto st = run_workers("gpu", n, backend, std::chrono::seconds(240), mode);
  for (std::size_t r = 0; r < st.size(); ++r)
    EXPECT_TRUE(st[r].exited && st[r].code == 0)
        << "rank " << r << ": exit code " << st[r].code << ", signal " << st[r].signal;
}

// Defaults (LL up to 1 MiB pushed per rank), deferred done and chunked (pipelined) staging on, with
// thresholds small enough to engage.
TEST(GpuCollectives, CudaIpcEqualsNcclBitwise) { run_backend("cuda-ipc"); }
// The pull protocol everywhere: every exchange waits for its peers' done and stages in one piece.
TEST(GpuCollectives, CudaIpcPlainEqualsNcclBitwise) { run_backend("cuda-ipc", "plain"); }
// The LL protocol for every exchange of known size (rounds included).
TEST(GpuCollectives, CudaIpcLLEqualsNcclBitwise) { run_backend("cuda-ipc", "ll"); }
TEST(GpuCollectives, NcclBackendEqualsNcclBitwise) { run_backend("nccl"); }

}  // namespace
}  // namespace gfdit::coll::testing
