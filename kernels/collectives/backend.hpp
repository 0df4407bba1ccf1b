#pragma once
// The one seam between the World (planning, chunking, reshard and all_reduce algorithms) and a
// backend (moving bytes and signalling). Every collective is lowered to `exchange`: each
// participant publishes one segment per participant and receives one segment from each.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/hash.hpp"
#include "common/result.hpp"
#include "kernels/collectives/rendezvous.hpp"
#include "kernels/collectives/types.hpp"

namespace gfdit::coll::detail {

struct peer_xfer {
  const void* send = nullptr;  // what I send to this participant
  std::size_t send_bytes = 0;
  void* recv = nullptr;  // where what it sends me lands
  std::size_t recv_bytes = 0;
};

struct exchange_plan {
  int channel = 0;  // backend channel (model channels, then the reshard channel)
  std::uint64_t group_id = 0;
  std::uint64_t epoch = 0;
  int n = 0;             // participants
  int me = 0;            // my index among them
  bool barrier = false;  // no data: only synchronise (backends that move no signals need to know)
  // The largest segment of any edge, known alike to every participant (0: not known, e.g.
  // all_to_all_v). Backends may choose a protocol by it, since every participant decides alike.
  std::size_t max_segment = 0;
  std::array<std::int32_t, max_group_size> ranks{};  // world ranks, in group order
  std::array<peer_xfer, max_group_size> x{};         // indexed like ranks
};

// Signal value for one edge of one exchange: unique per (session, group, epoch, edge sequence),
// so a stale signal from an earlier exchange or epoch never equals the one awaited now.
constexpr std::uint64_t edge_tag(std::uint64_t nonce, std::uint64_t group_id, std::uint64_t epoch,
                                 std::uint64_t seq) noexcept {
  std::uint64_t h = splitmix64(nonce ^ group_id);
  h = splitmix64(h ^ epoch);
  h = splitmix64(h ^ seq);
  return h | 1u;  // never 0, the value of a fresh cell
}

struct backend_config {
  int rank = 0;
  int size = 1;
  int channels = 2;  // model channels; the reshard channel is index `channels`
  std::size_t buffer_bytes = 0;
  std::chrono::milliseconds timeout{10000};
  int device = -1;
  bool defer_done = true;
  std::size_t pipeline_min_bytes = 0;
  std::size_t pipeline_chunk = 0;
  std::size_t ll_max_bytes = 0;
};

class backend {
 public:
  virtual ~backend() = default;
  // Bytes one rank may publish in one exchange on one channel (SIZE_MAX: unbounded).
  virtual std::size_t capacity() const noexcept = 0;
  virtual result<void> exchange(const exchange_plan& plan, stream_ref s) = 0;
  // dst[i] = ((rows[0][i] + rows[1][i]) + rows[2][i]) + ..., rows stored back to back.
  virtual result<void> reduce_rows(dtype t, const void* rows, int n, std::size_t count, void* dst, stream_ref s) = 0;
  // capacity() bytes of backend memory for a model channel's all_reduce.
  virtual void* scratch(int channel) noexcept = 0;
  // This rank's publish region of a channel: data placed here is sent without a copy.
  virtual void* symmetric(int channel) noexcept = 0;
  // World rank `rank`'s symmetric area of a channel, mapped in this process (null: not mapped).
  virtual void* peer_symmetric(int channel, int rank) noexcept {
    (void)channel, (void)rank;
    return nullptr;
  }
  virtual result<void> synchronize(stream_ref s) = 0;
};

// Factories, one per backend file. Those not built return errc::not_found.
result<std::unique_ptr<backend>> make_host_backend(rendezvous& rv, const backend_config& cfg, std::uint64_t nonce);
result<std::unique_ptr<backend>> make_cuda_ipc_backend(rendezvous& rv, const backend_config& cfg, std::uint64_t nonce);
result<std::unique_ptr<backend>> make_nccl_backend(rendezvous& rv, const backend_config& cfg, std::uint64_t nonce);

}  // namespace gfdit::coll::detail
