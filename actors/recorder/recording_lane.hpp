#pragma once
// One sending thread's part of a recording_queue: a ring of records that only that thread
// writes and only the queue's writer thread reads (single producer, single consumer).
//
// Why a copy per thread: keeping the routed envelope until the writer has encoded it (the
// earlier design) cost more than the copy. The envelope outlives its handling, its reference
// count is written by a second thread, and the allocator hands the sender a cold block next
// time instead of the one just freed (bench/RESULTS.md § recorder overhead). A record of a
// small envelope is its fields and bytes copied here, so the envelope dies as it would
// unrecorded; a large one (above the queue's copy limit) is kept by reference, where a copy
// would cost more than it saves.
//
// Layout: records one after another, each starting with record_head and padded to 8 bytes; a
// record that would cross the ring's end is preceded by a pad record that fills the rest.
// `head` (bytes ever published) and `tail` (bytes ever released) only grow; the producer
// publishes with a release store and the consumer releases likewise.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>

#include "messages/envelope.hpp"

namespace gfdit::bag {

enum class record_form : std::uint8_t {
  pad = 0,     // filler up to the ring's end
  copy = 1,    // the envelope's fields, then sender, destination and payload bytes
  ref = 2,     // an envelope_ptr (placement-new'd after the head), for large payloads
  marker = 3,  // "actor handled the envelope": its fields, sender, destination, the actor
};

struct record_head {
  std::uint32_t bytes = 0;  // the whole record, head included, a multiple of 8
  record_form form = record_form::pad;
  route kind = route::direct;
  std::uint16_t version = 0;
  std::uint64_t stamp = 0;  // the tap's stamp (recorder_tap.hpp): the lanes merge by it
  std::uint32_t type_id = 0;
  std::uint32_t sender_len = 0, destination_len = 0, body_len = 0;  // body: payload or actor
  std::uint64_t seq = 0, logical = 0, trace_id = 0, correlation = 0;
  std::int64_t wall_ns = 0, at_ns = 0;  // at_ns: a marker's handling time
};
static_assert(sizeof(record_head) % 8 == 0);

inline constexpr std::size_t record_align = 8;
inline std::size_t padded(std::size_t n) { return (n + record_align - 1) & ~(record_align - 1); }

class recording_lane {
 public:
  explicit recording_lane(std::size_t capacity);  // rounded up to 8 bytes
  ~recording_lane();                              // lets go of the envelopes of ref records
  recording_lane(const recording_lane&) = delete;
  recording_lane& operator=(const recording_lane&) = delete;

  // --- producer (the lane's thread) ---
  // Room for a record of `bytes` (padded), contiguous; nullptr when the ring is full. The
  // record becomes visible at publish().
  char* reserve(std::size_t bytes);
  void publish();  // the reserved record (and its pad, if any)
  // Large envelopes the lane keeps alive, bounded apart from the ring: their payload bytes.
  std::uint64_t referenced_bytes_pending() const { return ref_added_ - ref_done_.load(std::memory_order_acquire); }
  void add_referenced(std::uint64_t n) { ref_added_ += n; }
  // Whether `every` bytes were published since it last said so (the writer's wake-up).
  bool due(std::size_t every) {
    if (next_head_ - woken_at_ < every) return false;
    woken_at_ = next_head_;
    return true;
  }
  // Likewise for the payload bytes of referenced envelopes.
  bool referenced_due(std::uint64_t every) {
    if (ref_added_ - ref_woken_at_ < every) return false;
    ref_woken_at_ = ref_added_;
    return true;
  }

  // --- consumer (the writer thread) ---
  std::uint64_t published() const { return head_.load(std::memory_order_acquire); }
  std::uint64_t released() const { return tail_.load(std::memory_order_relaxed); }
  // The record at byte count `at` (released() <= at < published()), pads included.
  const record_head& at(std::uint64_t at) const {
    return *reinterpret_cast<const record_head*>(ring_.get() + at % cap_);
  }
  const char* body(std::uint64_t at) const { return ring_.get() + at % cap_ + sizeof(record_head); }
  const envelope& referenced(std::uint64_t at) const { return **reinterpret_cast<const envelope_ptr*>(body(at)); }
  // Drops the envelope a ref record holds (once written).
  void let_go(std::uint64_t at, std::uint64_t payload_bytes);
  // Everything before `upto` is done with: the producer may reuse it.
  void release(std::uint64_t upto) { tail_.store(upto, std::memory_order_release); }
  // Bytes published and not yet released (approximate while either side runs).
  std::uint64_t queued() const { return published() - tail_.load(std::memory_order_acquire); }

  // Its thread exited: once drained, the lane can go.
  void orphan() { orphaned_.store(true, std::memory_order_release); }
  bool drained_orphan() const { return orphaned_.load(std::memory_order_acquire) && released() == published(); }

 private:
  std::size_t cap_;
  std::unique_ptr<char[]> ring_;
  // Producer's line: what it reserved and the consumer's tail as last read.
  alignas(64) std::uint64_t next_head_ = 0, reserved_end_ = 0, tail_seen_ = 0, ref_added_ = 0, woken_at_ = 0,
                            ref_woken_at_ = 0;
  std::atomic<std::uint64_t> head_{0};
  // Consumer's line.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::atomic<std::uint64_t> ref_done_{0};
  std::atomic<bool> orphaned_{false};
};

}  // namespace gfdit::bag
