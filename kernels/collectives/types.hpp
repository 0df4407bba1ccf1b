#pragma once
// Vocabulary shared by the collectives: backends, element types, streams, limits, token layouts.
// Nothing here names a hardware API, so callers without CUDA include it unchanged.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gfdit::coll {

// Chosen once, when the World is made; every Group of that World uses it.
enum class backend_kind : std::uint8_t {
  host,      // POSIX shared memory + atomics between processes (CPU workers, CI)
  cuda_ipc,  // peer-mapped GPU memory on one node
  nccl,      // grouped ncclSend/ncclRecv on one world communicator (across nodes)
};

constexpr std::string_view to_string(backend_kind k) noexcept {
  switch (k) {
    case backend_kind::host:
      return "host";
    case backend_kind::cuda_ipc:
      return "cuda-ipc";
    case backend_kind::nccl:
      return "nccl";
  }
  return "unknown";
}

// Element types of the deterministic all_reduce (the other collectives move bytes).
enum class dtype : std::uint8_t { f32, bf16, f16, i32 };

constexpr std::size_t size_of(dtype t) noexcept {
  switch (t) {
    case dtype::f32:
      return 4;
    case dtype::bf16:
      return 2;
    case dtype::f16:
      return 2;
    case dtype::i32:
      return 4;
  }
  return 0;
}

// An opaque stream: a cudaStream_t for the GPU backends (nullptr = the legacy default stream),
// ignored by the host backend. Kept opaque so this header needs no CUDA.
struct stream_ref {
  void* handle = nullptr;
};

// Fixed bounds, so forming a group and planning a collective never allocate.
inline constexpr int max_world_size = 64;
inline constexpr int max_group_size = 64;
// Channels: independent buffers + signal cells. A group runs on one channel; two groups used at
// the same time from different threads (or streams) must use different channels.
inline constexpr int max_model_channels = 4;

// A token-sharded tensor: `tokens` rows of `row_bytes` each, split over a group's members in
// member order, member i holding rows [shard_begin(i), shard_begin(i+1)).
struct token_layout {
  std::int64_t tokens = 0;
  std::size_t row_bytes = 0;
};

// Balanced contiguous split: the first (tokens % n) members get one row more.
constexpr std::int64_t shard_begin(std::int64_t tokens, int n, int i) noexcept {
  const std::int64_t q = tokens / n, r = tokens % n;
  return i * q + (i < r ? i : r);
}
constexpr std::int64_t shard_rows(std::int64_t tokens, int n, int i) noexcept {
  return shard_begin(tokens, n, i + 1) - shard_begin(tokens, n, i);
}

}  // namespace gfdit::coll
