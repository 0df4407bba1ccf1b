// CUDA backend: the launch code. The kernels are in cuda/ (device_atoms, forward_sm80,
// backward_common, backward_sm80, backward_sm90, forward_sm90), included here so they stay one
// translation unit; the schedules of the backward are dash_schedule.hpp.
//
// Portable tensor-core kernels (mma.sync m16n8k16, sm_80+) and Hopper ones (wgmma, sm_90a).
//
// Forward: one block per (Q tile, head, sequence), keys in ascending order, no split-KV, so a
// head's bits never depend on batch or head count.
// Backward: a persistent grid (one block per SM, count read from the device); blocks claim KV
// tiles in order from a global counter and visit the Q tiles in their schedule's order. A
// partial dQ tile is added into an fp32 accumulator when the tile's semaphore equals the block's
// rank, a fixed bijection; the add is complete in global memory and fenced before the semaphore
// is released. On sm_90 the add is a bulk reduce (cp.reduce.async.bulk) from shared memory; the
// portable path (compute_80 PTX) adds from registers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/gpu_check.hpp"
#include "kernels/attention/attention.hpp"
#include "kernels/attention/cuda/backward_common.cuh"
#include "kernels/attention/cuda/backward_sm80.cuh"
#include "kernels/attention/cuda/backward_sm90.cuh"
#include "kernels/attention/cuda/device_atoms.cuh"
#include "kernels/attention/cuda/forward_sm80.cuh"
#include "kernels/attention/cuda/forward_sm90.cuh"
#include "kernels/attention/dash_schedule.hpp"
#include "kernels/attention/wgmma.cuh"

namespace gfdit::attention {
namespace {

// ---- host side -----------------------------------------------------------------------------
seq_layout make_layout(const problem& p, const std::int32_t* cu_dev) {
  return seq_layout{p.heads, p.seqlen, p.varlen() ? 1 : 0, cu_dev, p.total_tokens()};
}

int max_len(const problem& p) {
  int m = 0;
  for (int b = 0; b < p.batch; ++b) m = std::max(m, p.seq_len(b));
  return m;
}

// 128-row query tiles per (batch, head) pair of the Hopper forward: its work items per pair.
int fwd90_tiles(const problem& p) { return (max_len(p) + kFwd90M - 1) / kFwd90M; }

// The (batch, head) pairs a forward call computes.
struct pair_range {
  int begin, end;
};
pair_range pairs_of(const problem& p, const forward_args& a) {
  return {a.pair_begin, a.pair_end < 0 ? p.batch * p.heads : a.pair_end};
}

template <bool BF16, int D, bool CAUSAL, int RW>
result<void> launch_forward_rw(const problem& p, const forward_args& a, cudaStream_t st) {
  using C = fwd_cfg<D, RW>;
  auto kern = fwd_kernel<BF16, D, CAUSAL, RW>;
  GFDIT_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, C::smem));
  const auto [first, last] = pairs_of(p, a);
  for (int p0 = first; p0 < last; p0 += 65535) {  // grid.y's limit
    dim3 grid((max_len(p) + C::bm - 1) / C::bm, std::min(last - p0, 65535));
    kern<<<grid, C::threads, C::smem, st>>>(make_layout(p, a.cu_seqlens), static_cast<const std::uint16_t*>(a.q),
                                            static_cast<const std::uint16_t*>(a.k),
                                            static_cast<const std::uint16_t*>(a.v), static_cast<std::uint16_t*>(a.o),
                                            a.lse, p.softmax_scale() * kLog2e, p0);
    GFDIT_CUDA(cudaGetLastError());
  }
  return {};
}

// Query rows per warp = 16 * RW. GFDIT_ATTN_FWD_RW=1|2 overrides the default (a tuning knob for
// the benchmark; both variants are exact and deterministic).
int forward_rows_per_warp(int head_dim) {
  static const int env = [] {
    const char* e = std::getenv("GFDIT_ATTN_FWD_RW");
    return e ? std::atoi(e) : 0;
  }();
  if (env == 1 || env == 2) return env;
  return 2;  // measured faster than 1 for both head dims on H100 (see README)
}

// The wgmma kernels run where their sm_90a code was loaded (an H100/H200 running the cubin, not
// compute_80 PTX compiled at load time). GFDIT_ATTN_KERNEL=mma forces the portable kernels.
// Callers keep the answer per kernel (it cannot change in a process): launches are a hot path.
bool use_wgmma(const void* kernel) {
  const char* e = std::getenv("GFDIT_ATTN_KERNEL");
  if (e && std::string(e) == "mma") return false;
  cudaFuncAttributes fa{};
  return cudaFuncGetAttributes(&fa, kernel) == cudaSuccess && fa.ptxVersion >= 90;
}

// Blocks of `kernel` resident at once on the current device (its SMs x blocks per SM).
int resident_blocks(const void* kernel, int threads, int smem) {
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem) != cudaSuccess)
    return 0;
  return sms * per_sm;
}

template <bool BF16, int D, bool CAUSAL, int WGS>
result<void> launch_fwd90(const problem& p, const forward_args& a, int tiles, std::int64_t item0, std::int64_t items,
                          cudaStream_t st) {
  auto kern = fwd90_kernel<BF16, D, CAUSAL, WGS>;
  constexpr int smem = fwd90_smem<D, WGS>();
  GFDIT_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kern<<<unsigned(items * (2 / WGS)), fwd90_threads<WGS>(), smem, st>>>(
      make_layout(p, a.cu_seqlens), static_cast<const std::uint16_t*>(a.q), static_cast<const std::uint16_t*>(a.k),
      static_cast<const std::uint16_t*>(a.v), static_cast<std::uint16_t*>(a.o), a.lse, p.softmax_scale() * kLog2e,
      tiles, item0);
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

// Resident forward blocks of WGS warpgroups on the current device, or 0 where the portable
// kernel runs.
template <bool BF16, int D, bool CAUSAL, int WGS>
int fwd90_resident() {
  auto k90 = fwd90_kernel<BF16, D, CAUSAL, WGS>;
  static const int n = [&] {
    if (!use_wgmma(reinterpret_cast<const void*>(k90))) return 0;
    if (cudaFuncSetAttribute(k90, cudaFuncAttributeMaxDynamicSharedMemorySize, fwd90_smem<D, WGS>()) != cudaSuccess)
      return 0;
    return resident_blocks(reinterpret_cast<const void*>(k90), fwd90_threads<WGS>(), fwd90_smem<D, WGS>());
  }();
  return n;
}

// Query rows per forward block when the caller leaves it: 64 where two one-warpgroup blocks fit
// on an SM (each one's softmax and loads then run under the other's products: mmdit-12b-standin's
// attention on an H100, 423 -> 555 TFLOP/s), else 128. GFDIT_ATTN_FWD90_ROWS=64|128 overrides.
template <bool BF16, int D, bool CAUSAL>
int fwd90_default_rows() {
  static const int rows = [] {
    const char* e = std::getenv("GFDIT_ATTN_FWD90_ROWS");
    if (const int asked = e ? std::atoi(e) : 0; asked == 64 || asked == 128) return asked;
    const int one = fwd90_resident<BF16, D, CAUSAL, 1>(), two = fwd90_resident<BF16, D, CAUSAL, 2>();
    return two > 0 && one >= 2 * two ? 64 : 128;
  }();
  return rows;
}

// 128-row work items that run at once with the default block rows (a wave), or 0 where the
// portable kernel runs.
template <bool BF16, int D, bool CAUSAL>
int fwd90_slots() {
  if (fwd90_default_rows<BF16, D, CAUSAL>() == 64) return fwd90_resident<BF16, D, CAUSAL, 1>() / 2;
  return fwd90_resident<BF16, D, CAUSAL, 2>();
}

template <bool BF16, int D, bool CAUSAL>
result<void> launch_forward(const problem& p, const forward_args& a, cudaStream_t st) {
  static const bool hopper = use_wgmma(reinterpret_cast<const void*>(fwd90_kernel<BF16, D, CAUSAL, 2>));
  if (hopper) {
    const auto [first, last] = pairs_of(p, a);
    const int tiles = fwd90_tiles(p);
    const std::int64_t item0 = std::int64_t(first) * tiles, items = std::int64_t(last - first) * tiles;
    // 64-row blocks, two an SM; or 128-row blocks for the whole waves and, where a last partial
    // wave fits twice over, 64-row blocks for it.
    if ((a.block_rows ? a.block_rows : fwd90_default_rows<BF16, D, CAUSAL>()) == 64)
      return launch_fwd90<BF16, D, CAUSAL, 1>(p, a, tiles, item0, items, st);
    const int slots = fwd90_resident<BF16, D, CAUSAL, 2>();
    const std::int64_t tail = slots > 0 ? items % slots : 0;
    if (!a.split_tail || tail == 0 || 2 * tail > slots)
      return launch_fwd90<BF16, D, CAUSAL, 2>(p, a, tiles, item0, items, st);
    if (items > tail)
      if (auto r = launch_fwd90<BF16, D, CAUSAL, 2>(p, a, tiles, item0, items - tail, st); !r) return r;
    return launch_fwd90<BF16, D, CAUSAL, 1>(p, a, tiles, item0 + items - tail, tail, st);
  }
  if (forward_rows_per_warp(D) == 1) return launch_forward_rw<BF16, D, CAUSAL, 1>(p, a, st);
  return launch_forward_rw<BF16, D, CAUSAL, 2>(p, a, st);
}

struct ws_layout {
  std::size_t acc = 0, dvec = 0, sems = 0, table = 0, total = 0;
  int sem_count = 0;
};

std::size_t align_up(std::size_t x) { return (x + 255) / 256 * 256; }

ws_layout workspace_layout(const problem& p) {
  ws_layout w;
  int sems = 0;
  for (int b = 0; b < p.batch; ++b) sems += p.heads * ((p.seq_len(b) + kBwdM - 1) / kBwdM);
  w.sem_count = sems + 1;  // plus the item counter
  w.acc = 0;
  w.dvec = align_up(std::size_t(p.elements()) * 4);
  w.sems = w.dvec + align_up(std::size_t(p.rows()) * 4);
  w.table = w.sems + align_up(std::size_t(sems) * 4);
  w.total = w.table + align_up(sizeof(bwd_batch) * p.batch);
  return w;
}

template <bool BF16, int D, bool CAUSAL>
result<void> launch_backward(const problem& p, const backward_args& a, cudaStream_t st) {
  const ws_layout w = workspace_layout(p);
  auto* ws = static_cast<std::uint8_t*>(a.workspace);
  std::vector<int> starts(p.batch), lens(p.batch);
  for (int b = 0; b < p.batch; ++b) {
    starts[b] = p.seq_start(b);
    lens[b] = p.seq_len(b);
  }
  const dash::bwd_plan plan = dash::make_bwd_plan(starts, lens, p.heads);
  const std::vector<bwd_batch>& table = plan.table;
  const int items = plan.items;
  // Pageable source: the copy is staged before cudaMemcpyAsync returns, so `table` may die.
  GFDIT_CUDA(cudaMemcpyAsync(ws + w.table, table.data(), sizeof(bwd_batch) * p.batch, cudaMemcpyHostToDevice, st));
  GFDIT_CUDA(cudaMemsetAsync(ws + w.acc, 0, std::size_t(p.elements()) * 4, st));
  GFDIT_CUDA(cudaMemsetAsync(ws + w.sems, 0, std::size_t(w.sem_count) * 4, st));

  const seq_layout L = make_layout(p, a.cu_seqlens);
  float* dvec = reinterpret_cast<float*>(ws + w.dvec);
  {
    const std::int64_t rows = p.rows();
    const int threads = 256;
    const std::int64_t blocks = (rows * 32 + threads - 1) / threads;
    bwd_pre_kernel<BF16, D><<<unsigned(blocks), threads, 0, st>>>(L, rows, static_cast<const std::uint16_t*>(a.o),
                                                                  static_cast<const std::uint16_t*>(a.dout), dvec);
    GFDIT_CUDA(cudaGetLastError());
  }

  static const bool hopper = use_wgmma(reinterpret_cast<const void*>(bwd90_kernel<BF16, D, CAUSAL>));
  auto kern = hopper ? bwd90_kernel<BF16, D, CAUSAL> : bwd_kernel<BF16, D, CAUSAL>;
  const int smem = hopper ? bwd90_smem<D>() : bwd_smem<D>();
  GFDIT_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int dev = 0, sms = 0, per_sm = 0;
  GFDIT_CUDA(cudaGetDevice(&dev));
  GFDIT_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  GFDIT_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, kBwdThreads, smem));
  if (per_sm < 1) return make_error(errc::state, "attention: backward kernel does not fit on an SM");
  const int grid = std::min(items, sms * per_sm);

  bwd_params P{};
  P.L = L;
  P.q = static_cast<const std::uint16_t*>(a.q);
  P.k = static_cast<const std::uint16_t*>(a.k);
  P.v = static_cast<const std::uint16_t*>(a.v);
  P.dout = static_cast<const std::uint16_t*>(a.dout);
  P.lse = a.lse;
  P.dvec = dvec;
  P.dq_acc = reinterpret_cast<float*>(ws + w.acc);
  P.dk = static_cast<std::uint16_t*>(a.dk);
  P.dv = static_cast<std::uint16_t*>(a.dv);
  P.sems = reinterpret_cast<int*>(ws + w.sems);
  P.counter = P.sems + (w.sem_count - 1);
  P.batches = reinterpret_cast<const bwd_batch*>(ws + w.table);
  P.batch = p.batch;
  P.items = items;
  P.scale = p.softmax_scale();
  P.scale_log2 = p.softmax_scale() * kLog2e;
  P.sched = static_cast<int>(a.sched);
  void* args[] = {&P};
  // Blocks wait on each other's semaphores: all of them must be resident at once.
  GFDIT_CUDA(
      cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kern), dim3(grid), dim3(kBwdThreads), args, smem, st));
  GFDIT_CUDA(cudaGetLastError());

  const std::int64_t n = p.elements();
  bwd_post_kernel<BF16>
      <<<unsigned((n / 2 + 255) / 256), 256, 0, st>>>(n, P.dq_acc, P.scale, static_cast<std::uint16_t*>(a.dq));
  GFDIT_CUDA(cudaGetLastError());
  return {};
}

template <template <bool, int, bool> class F, class... Args>
result<void> dispatch(const problem& p, Args&&... args) {
  const bool bf = p.type == dtype::bf16, causal = p.mask == mask_kind::causal;
  const int d = p.head_dim;
#define GFDIT_ATTN_CASE(BF, DD, CA) \
  if (bf == BF && d == DD && causal == CA) return F<BF, DD, CA>::run(p, args...);
  GFDIT_ATTN_CASE(true, 64, false)
  GFDIT_ATTN_CASE(true, 64, true)
  GFDIT_ATTN_CASE(true, 128, false)
  GFDIT_ATTN_CASE(true, 128, true)
  GFDIT_ATTN_CASE(false, 64, false)
  GFDIT_ATTN_CASE(false, 64, true)
  GFDIT_ATTN_CASE(false, 128, false)
  GFDIT_ATTN_CASE(false, 128, true)
#undef GFDIT_ATTN_CASE
  return make_error(errc::invalid_argument, "attention: unsupported configuration");
}

template <bool BF16, int D, bool CAUSAL>
struct fwd_launcher {
  static result<void> run(const problem& p, const forward_args& a, cudaStream_t st) {
    return launch_forward<BF16, D, CAUSAL>(p, a, st);
  }
};
template <bool BF16, int D, bool CAUSAL>
struct fwd_slots {
  static result<void> run(const problem&, int* slots) {
    *slots = fwd90_slots<BF16, D, CAUSAL>();
    return {};
  }
};
template <bool BF16, int D, bool CAUSAL>
struct bwd_launcher {
  static result<void> run(const problem& p, const backward_args& a, cudaStream_t st) {
    return launch_backward<BF16, D, CAUSAL>(p, a, st);
  }
};

}  // namespace

const char* gpu_kernels() noexcept {
  static const bool hopper = use_wgmma(reinterpret_cast<const void*>(bwd90_kernel<true, 128, false>));
  return hopper ? "wgmma (sm_90a)" : "mma.sync";
}

bool gpu_available() noexcept {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

result<void> forward(const problem& p, const forward_args& a, void* stream) {
  if (auto r = validate(p); !r) return r;
  if (!a.q || !a.k || !a.v || !a.o || !a.lse)
    return make_error(errc::invalid_argument, "attention: forward needs q, k, v, o and lse");
  if (p.varlen() && !a.cu_seqlens)
    return make_error(errc::invalid_argument, "attention: varlen needs device cu_seqlens");
  const int pairs = p.batch * p.heads;
  if (a.pair_begin < 0 || a.pair_begin > pairs || a.pair_end < -1 || a.pair_end > pairs ||
      (a.pair_end >= 0 && a.pair_end < a.pair_begin))
    return make_error(errc::invalid_argument, "attention: pairs [" + std::to_string(a.pair_begin) + ", " +
                                                  std::to_string(a.pair_end) + ") outside [0, " +
                                                  std::to_string(pairs) + ")");
  if (a.block_rows != 0 && a.block_rows != 64 && a.block_rows != 128)
    return make_error(errc::invalid_argument,
                      "attention: block_rows " + std::to_string(a.block_rows) + " is not 0, 64 or 128");
  if (const auto [first, last] = pairs_of(p, a); first == last) return {};
  return dispatch<fwd_launcher>(p, a, static_cast<cudaStream_t>(stream));
}

int forward_whole_wave_pairs(const problem& p) noexcept {
  int slots = 0;
  if (!validate(p) || !dispatch<fwd_slots>(p, &slots) || slots == 0) return 0;
  const std::int64_t tiles = fwd90_tiles(p), items = std::int64_t(p.batch) * p.heads * tiles;
  return static_cast<int>(items / slots * slots / tiles);
}

std::size_t backward_workspace_bytes(const problem& p) noexcept {
  if (!validate(p)) return 0;
  return workspace_layout(p).total;
}

result<void> backward(const problem& p, const backward_args& a, void* stream) {
  if (auto r = validate(p); !r) return r;
  if (!a.q || !a.k || !a.v || !a.o || !a.dout || !a.lse || !a.dq || !a.dk || !a.dv)
    return make_error(errc::invalid_argument, "attention: backward needs every tensor");
  if (p.varlen() && !a.cu_seqlens)
    return make_error(errc::invalid_argument, "attention: varlen needs device cu_seqlens");
  if (!schedule_supports(a.sched, p.mask))
    return make_error(errc::invalid_argument,
                      std::string("attention: schedule ") + std::string(to_string(a.sched)) + " needs the full mask");
  if (!a.workspace || a.workspace_bytes < backward_workspace_bytes(p))
    return make_error(errc::invalid_argument, "attention: backward workspace too small");
  return dispatch<bwd_launcher>(p, a, static_cast<cudaStream_t>(stream));
}

}  // namespace gfdit::attention
