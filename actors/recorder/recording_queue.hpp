#pragma once
// The recorder's path from the bus to the disk. Any thread push()es what the node routes: a
// small envelope is copied into the pushing thread's own lane (recording_lane.hpp: no lock, no
// shared reference count, the envelope dies as it would unrecorded), a large one is kept by
// reference. Every record carries its tap stamp (recorder_tap.hpp: a cause has a smaller stamp
// than its effects); one writer thread merges the lanes by stamp, below the bound under which
// no stamp can still come (record_stamp_bound), so the bag's order is a linear extension of
// happens-before. It filters, encodes into chunks and writes them. The
// queued bytes are bounded per lane: when the writer falls behind, overflow::block makes the
// pushing thread wait (backpressure on the bus), overflow::drop counts what it throws away.
// Nothing is lost without being counted.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "actors/recorder/recorder_tap.hpp"
#include "actors/recorder/recording_lane.hpp"
#include "bag/bag_writer.hpp"

namespace gfdit::bag {

enum class overflow { block, drop };

struct queue_options {
  std::size_t chunk_bytes = 1u << 20;
  // The bound on what waits for the writer, per pushing thread: its lane holds this much of
  // copied records (4 KiB to 16 MiB), and the envelopes it keeps by reference this many payload
  // bytes.
  std::size_t max_queued_bytes = 64u << 20;
  // Envelopes whose record takes more than this are kept by reference instead of copied (the
  // writer is then woken every MiB of such payloads, so it lets go of them soon).
  std::size_t copy_limit = 1u << 10;
  overflow on_full = overflow::block;
  std::chrono::milliseconds flush_every{200};  // a partial chunk reaches the disk this often
  // The writer thread's nice value: above 0 it yields the cores to the actors it records; a
  // writer that then falls behind shows up as blocked senders or counted drops.
  int writer_nice = 0;
  filter keep;
};

struct queue_counters {
  std::uint64_t recorded = 0, dropped = 0, blocked = 0, bytes = 0, chunks = 0, queued_bytes = 0, filtered_out = 0;
  std::uint64_t lanes = 0;  // sending threads with a lane (a thread's lane goes after it exits)
  std::string error;
};

class recording_queue {
 public:
  recording_queue(std::unique_ptr<writer> w, queue_options o);
  ~recording_queue();  // stop()s
  recording_queue(const recording_queue&) = delete;
  recording_queue& operator=(const recording_queue&) = delete;

  // Thread-safe. Must not race stop() (the recorder detaches its tap sink first). `stamp`: the
  // tap's (a direct caller's push is stamped now).
  void push(const envelope_ptr& env, std::uint64_t stamp = record_stamp());
  // The dispatch marker "`actor` handled `env` at `at_ns`" (handled_marker.hpp), numbered in
  // the bag's order; the filter judges `env`, so a marker is kept exactly when its message is.
  void push_handled(const envelope& env, std::string_view actor, std::int64_t at_ns,
                    std::uint64_t stamp = record_stamp());
  // Writes everything pushed before the call and waits for it.
  void flush();
  // Flushes, stops the writer thread and closes the bag (footer). Idempotent.
  result<void> stop();
  queue_counters counters() const;

 private:
  recording_lane& my_lane();
  // Room in this thread's lane for `bytes`, waiting or dropping per on_full; nullptr: dropped.
  // `referenced`: the payload bytes a ref record would keep alive.
  char* reserve(recording_lane& l, std::size_t bytes, std::uint64_t referenced);
  // A record in this thread's lane (*lane), its head filled; nullptr: dropped (counted).
  record_head* begin_record(const envelope& env, record_form form, std::size_t bytes, std::uint64_t referenced,
                            std::uint64_t stamp, recording_lane*& lane);
  void published(recording_lane& l);  // and wakes the writer per chunk's worth
  void wake_writer();
  void run();
  // Writer thread: writes what the lanes published, merged by stamp, below the stamp bound
  // (everything at stop); returns whether nothing published below `wait_below` is left.
  bool drain(std::uint64_t wait_below, bool stop);
  void write_record(recording_lane& l, std::uint64_t at);  // writer thread: filter, encode
  void release_written();  // writer thread: the lanes' room up to the cursors, to waiting senders
  void write_filling();    // writer thread

  const std::uint64_t id_;  // this queue among all (a thread's lane cache is keyed by it)
  std::unique_ptr<writer> writer_;
  queue_options opt_;
  std::size_t lane_bytes_;

  std::atomic<bool> closed_{false};  // stopping, stopped or failed: pushes are dropped
  std::atomic<std::uint64_t> dropped_{0}, blocked_{0};
  std::atomic<int> waiting_{0};  // pushing threads waiting for room

  mutable std::mutex lanes_mu_;
  std::vector<std::unique_ptr<recording_lane>> lanes_;  // lanes_mu_; one per pushing thread

  mutable std::mutex mu_;
  std::condition_variable work_cv_, space_cv_, idle_cv_;
  bool wake_ = false;                               // mu_
  std::uint64_t flush_asked_ = 0, flush_done_ = 0;  // mu_: flush() generations
  std::uint64_t flush_below_ = 0;                   // mu_: stamps the latest flush() waits for
  bool stopping_ = false;                           // mu_
  bool stopped_ = false;                            // mu_
  queue_counters c_;                                // mu_: the writer's part, published

  // Writer thread only.
  chunk_builder filling_;
  envelope scratch_;   // a copied record, rebuilt in place
  std::string actor_;  // a marker's actor, likewise
  struct cursor {
    recording_lane* lane;
    std::uint64_t at, end;
  };
  std::vector<cursor> cursors_;
  std::uint64_t marks_ = 0;  // markers written, in order
  std::uint64_t recorded_ = 0, filtered_ = 0, written_bytes_ = 0, written_chunks_ = 0;
  std::string write_error_;
  std::thread thread_;
};

}  // namespace gfdit::bag
