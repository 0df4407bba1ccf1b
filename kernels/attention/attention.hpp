#pragma once
// Scaled dot-product attention: forward (O, log-sum-exp) and a backward whose dQ accumulation
// order is a fixed schedule, so the gradients repeat bit for bit.
//
// Layouts (element strides; the head dim is contiguous):
//  - padded  (cu_seqlens empty): Q/K/V/O/dO [batch, heads, seqlen, dim]; LSE [batch, heads, seqlen]
//  - varlen  (cu_seqlens = batch+1 offsets): [total_tokens, heads, dim]; LSE [heads, total_tokens]
// Self-attention only (query and key lengths are equal per sequence); causal is top-left aligned.
// Scores are scaled by `scale` (0 means 1/sqrt(head_dim)); LSE is in natural-log units.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/result.hpp"

namespace gfdit::attention {

enum class dtype : std::uint8_t { bf16, fp16 };
enum class mask_kind : std::uint8_t { full, causal };

// Visit order of Q tiles per KV block and the rank of each contributor to a dQ tile (see
// docs/deterministic-attention.md). `atomic` is the non-deterministic reference.
enum class schedule : std::uint8_t { ascending, descending, shift, spt, atomic };

inline constexpr schedule all_schedules[] = {schedule::ascending, schedule::descending, schedule::shift, schedule::spt,
                                             schedule::atomic};
std::string_view to_string(schedule s) noexcept;
result<schedule> parse_schedule(std::string_view name);
bool is_deterministic(schedule s) noexcept;
// shift needs every KV block to visit every Q tile: full mask only.
bool schedule_supports(schedule s, mask_kind m) noexcept;

struct problem {
  int batch = 1;
  int heads = 1;
  int seqlen = 0;  // padded: every sequence; varlen: ignored (lengths come from cu_seqlens)
  int head_dim = 128;
  dtype type = dtype::bf16;
  mask_kind mask = mask_kind::full;
  float scale = 0.0f;
  std::span<const std::int32_t> cu_seqlens;  // host copy; empty = padded layout

  bool varlen() const noexcept { return !cu_seqlens.empty(); }
  std::int64_t total_tokens() const noexcept;  // batch*seqlen, or cu_seqlens.back()
  int seq_start(int b) const noexcept { return varlen() ? cu_seqlens[b] : 0; }
  int seq_len(int b) const noexcept { return varlen() ? cu_seqlens[b + 1] - cu_seqlens[b] : seqlen; }
  float softmax_scale() const noexcept;
  std::int64_t elements() const noexcept { return total_tokens() * heads * head_dim; }  // Q, K, ...
  std::int64_t rows() const noexcept { return total_tokens() * heads; }                 // LSE entries
  // Offsets of row (b, h, s) in a Q-like tensor and in LSE.
  std::int64_t row_offset(int b, int h, int s) const noexcept;
  std::int64_t lse_offset(int b, int h, int s) const noexcept;
};

// Checks shapes: positive sizes, head_dim 64 or 128, cu_seqlens monotone starting at 0.
result<void> validate(const problem& p);

// --- 16-bit float helpers (inputs travel as bit patterns; no external types) -------------
float bf16_to_float(std::uint16_t bits) noexcept;
std::uint16_t float_to_bf16(float x) noexcept;  // round to nearest even; NaN stays NaN
float fp16_to_float(std::uint16_t bits) noexcept;
std::uint16_t float_to_fp16(float x) noexcept;
float to_float(dtype t, std::uint16_t bits) noexcept;
std::uint16_t from_float(dtype t, float x) noexcept;

// --- CPU reference: fp64 accumulation, for small shapes (used by CI) ----------------------
// Inputs are 16-bit patterns of p.type; outputs are float. lse may be null.
result<void> reference_forward(const problem& p, const std::uint16_t* q, const std::uint16_t* k, const std::uint16_t* v,
                               float* o, float* lse);
result<void> reference_backward(const problem& p, const std::uint16_t* q, const std::uint16_t* k,
                                const std::uint16_t* v, const std::uint16_t* dout, float* dq, float* dk, float* dv);
// The same on double inputs/outputs (finite-difference checks need exact inputs).
result<void> reference_forward_f64(const problem& p, const double* q, const double* k, const double* v, double* o,
                                   double* lse);
result<void> reference_backward_f64(const problem& p, const double* q, const double* k, const double* v,
                                    const double* dout, double* dq, double* dk, double* dv);

// --- GPU (device pointers; `stream` is a cudaStream_t or null). Without CUDA these return an
// error. Bits of a head's forward output never depend on batch or head count (no split-KV).
bool gpu_available() noexcept;
// Which GPU kernels run on the current device: "wgmma (sm_90a)" on Hopper running our sm_90a
// code, "mma.sync" elsewhere or with GFDIT_ATTN_KERNEL=mma, "none" without CUDA.
const char* gpu_kernels() noexcept;

struct forward_args {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;
  const std::int32_t* cu_seqlens = nullptr;  // device copy of p.cu_seqlens when varlen
  // The (batch, head) pairs b * heads + h computed: [pair_begin, pair_end), pair_end -1 = all.
  // Others' rows of o and lse are left as they are; a pair's bits do not depend on the range.
  int pair_begin = 0, pair_end = -1;
  // Hopper: query rows per block, 128 (two warpgroups) or 64 (one warpgroup, two blocks an SM);
  // 0 = the default (64 where two fit on an SM). Same bits either way.
  int block_rows = 0;
  // Hopper, 128-row blocks: a last partial wave that fits twice over runs as 64-row blocks,
  // halving its time on the SMs it leaves idle. Same bits either way; false is a peer.
  bool split_tail = true;
};
result<void> forward(const problem& p, const forward_args& a, void* stream = nullptr);
// How many leading (batch, head) pairs fill whole waves of the forward on the current device
// with the default block_rows (0 where unknown or none): a caller may use their output while
// the remaining pairs run.
int forward_whole_wave_pairs(const problem& p) noexcept;

struct backward_args {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* o = nullptr;
  const void* dout = nullptr;
  const float* lse = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  const std::int32_t* cu_seqlens = nullptr;
  schedule sched = schedule::descending;
  void* workspace = nullptr;  // backward_workspace_bytes(p), device memory
  std::size_t workspace_bytes = 0;
};
std::size_t backward_workspace_bytes(const problem& p) noexcept;
result<void> backward(const problem& p, const backward_args& a, void* stream = nullptr);

}  // namespace gfdit::attention
