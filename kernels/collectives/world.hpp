#pragma once
// The World: every worker joins it once, at start-up (the only step that communicates to set up).
// After that, groups are formed locally (World::form) and collectives run on any subset of ranks.
//
// Conventions of every collective below:
//  - Only members of the group call it, all of them, in the same order relative to the other
//    collectives on the same channel (like NCCL). Indices (root, peer) are group indices.
//  - Buffers are host memory for the host backend and device memory for the GPU backends.
//  - GPU backends are stream-ordered and capturable in CUDA graphs: the call enqueues work and
//    returns; a peer that never arrives is reported by synchronize() as errc::timeout.
//  - The host backend completes the collective before returning, or returns errc::timeout.
//  - Two groups used at the same time (other threads or streams) must be on different channels;
//    reshard always runs on its own channel.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "common/result.hpp"
#include "kernels/collectives/group.hpp"
#include "kernels/collectives/rendezvous.hpp"
#include "kernels/collectives/types.hpp"

namespace gfdit::coll {

namespace detail {
class backend;
struct exchange_plan;
}  // namespace detail

struct world_options {
  backend_kind backend = backend_kind::host;
  // Per rank and channel: what one exchange can publish. Larger equal-split collectives are
  // cut into rounds; all_to_all_v and reshard must fit.
  std::size_t buffer_bytes = std::size_t{4} << 20;
  int channels = 2;                          // model channels (1..max_model_channels); reshard has one more of its own
  std::chrono::milliseconds timeout{10000};  // a collective waiting longer on a peer fails
  int device = -1;                           // CUDA device of this rank; -1 keeps the current one
  // cuda-ipc tuning. defer_done: a staged exchange returns without waiting for the peers'
  // `done`; the next exchange on the channel waits for it before reusing the staging buffer.
  // pipeline_min_bytes: staged exchanges of at least this many bytes stage in chunks of
  // pipeline_chunk that peers pull as soon as each is ready (0: never). Off by default: on
  // 2xH100 it was slower than staging in one piece (bench/RESULTS.md), though bitwise correct.
  bool defer_done = true;
  std::size_t pipeline_min_bytes = 0;
  std::size_t pipeline_chunk = std::size_t{1} << 20;
  // cuda-ipc: exchanges whose edges are known (every equal-split collective, barrier,
  // all_reduce, reshard; not all_to_all_v) and where largest edge x (participants - 1) is at
  // most this many bytes are pushed by the sender straight into the receivers' inboxes with the
  // flag in line with the data (LL protocol: one kernel, no staging copy, no separate signal, no
  // round trip). Measured crossover with the pull protocol (H200, 2 and 4 GPUs): 1-3 MiB sent
  // per rank. Costs 4 * ll_max_bytes * (size - 1) bytes of GPU memory per channel; 0 turns it
  // off. Every rank must pass the same value.
  std::size_t ll_max_bytes = std::size_t{1} << 20;
};

class World {
 public:
  // Collective over the rendezvous: every rank of the world calls it once.
  static result<std::unique_ptr<World>> create(rendezvous& rv, const world_options& opts);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  backend_kind kind() const noexcept { return opts_.backend; }
  const world_options& options() const noexcept { return opts_; }

  // No communication, no allocation: a group is its ordered members, an epoch and a channel.
  result<Group> form(std::span<const std::int32_t> members, std::uint64_t epoch, int channel = 0) const noexcept;

  // recv[j*bytes ..] = what member j sent to me: send[self*bytes ..] of member j.
  result<void> all_to_all(const Group& g, const void* send, void* recv, std::size_t bytes, stream_ref s = {});
  // Variable splits: I send send_bytes[j] bytes from send+send_offsets[j] to member j and
  // receive recv_bytes[j] bytes from member j at recv+recv_offsets[j]. Spans have g.size().
  result<void> all_to_all_v(const Group& g, const void* send, std::span<const std::size_t> send_bytes,
                            std::span<const std::size_t> send_offsets, void* recv,
                            std::span<const std::size_t> recv_bytes, std::span<const std::size_t> recv_offsets,
                            stream_ref s = {});
  // recv[j*bytes ..] = send of member j, in member order.
  result<void> all_gather(const Group& g, const void* send, void* recv, std::size_t bytes, stream_ref s = {});
  // Member `root` gets recv[j*bytes ..] = send of member j; recv is ignored elsewhere.
  result<void> gather(const Group& g, int root, const void* send, void* recv, std::size_t bytes, stream_ref s = {});
  // Member j gets recv = root's send[j*bytes ..]; send is ignored except at root.
  result<void> scatter(const Group& g, int root, const void* send, void* recv, std::size_t bytes, stream_ref s = {});
  // Point to point between two members, matched in program order per pair.
  result<void> send(const Group& g, int to, const void* buf, std::size_t bytes, stream_ref s = {});
  result<void> recv(const Group& g, int from, void* buf, std::size_t bytes, stream_ref s = {});
  result<void> barrier(const Group& g, stream_ref s = {});
  // Deterministic sum: every element is summed in member order ((x0 + x1) + x2) + ..., in fp32
  // for the 16-bit types and rounded once, so every member and every run gets the same bits.
  // In place (send == recv) is allowed.
  result<void> all_reduce(const Group& g, dtype t, const void* send, void* recv, std::size_t count, stream_ref s = {});
  // Moves a token-sharded tensor from group `from`'s layout to group `to`'s (overlapping or
  // disjoint), on the reshard channel. Every member of either group calls it; `src` is my shard
  // under `from` (ignored if not a member), `dst` my shard under `to` (ignored if not a member).
  result<void> reshard(const Group& from, const Group& to, token_layout layout, const void* src, void* dst,
                       stream_ref s = {});

  // GPU backends: waits for the stream and reports a peer timeout; host: returns at once.
  result<void> synchronize(stream_ref s = {});
  // This rank's publish region of a model channel (buffer_bytes long): a send buffer that lies
  // here is published without the staging copy.
  void* symmetric(int channel = 0) noexcept;
  // World rank `rank`'s symmetric area of a model channel as this process sees it: cuda-ipc maps
  // every peer's (device memory, written by kernels over NVLink/PCIe), host every peer's shared
  // memory; null for nccl. One-sided: the World never reads or writes a symmetric area except as
  // a send buffer that lies there, so what a kernel puts into a peer's area is the caller's
  // protocol; a barrier on a group holding both ranks orders it (writes before it are visible to
  // the peer after it, on GPUs once the writing kernel ended with a system-scope fence).
  void* peer_symmetric(int channel, std::int32_t rank) noexcept;

 private:
  World(int rank, int size, world_options opts, std::unique_ptr<detail::backend> be);
  // Runs a plan, cut into rounds of at most capacity()/n bytes per edge when every participant
  // knows the largest edge (max_segment); max_segment == 0 means one round.
  result<void> run(detail::exchange_plan& plan, std::size_t max_segment, stream_ref s);
  result<void> check_member(const Group& g) const noexcept;

  int rank_;
  int size_;
  world_options opts_;
  std::unique_ptr<detail::backend> be_;
};

}  // namespace gfdit::coll
