#pragma once
// The recorder's path from the bus to the disk. Any thread push()es the envelope pointer the
// node routes (a reference count under a short lock: no copy, no encoding on the bus's hot
// path); one writer thread takes the queued pointers in batches, filters, encodes them into
// chunks and writes them. The queued bytes are bounded: when the writer falls behind,
// overflow::block makes the pushing thread wait (backpressure on the bus), overflow::drop
// counts what it throws away. Nothing is lost without being counted.
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "actors/recorder/bag_writer.hpp"

namespace gfdit::bag {

enum class overflow { block, drop };

struct queue_options {
  std::size_t chunk_bytes = 1u << 20;
  std::size_t max_queued_bytes = 64u << 20;
  overflow on_full = overflow::block;
  std::chrono::milliseconds flush_every{200};  // a partial chunk reaches the disk this often
  // The writer thread's nice value: above 0 it yields the cores to the actors it records; a
  // writer that then falls behind shows up as blocked senders or counted drops.
  int writer_nice = 0;
  filter keep;
};

struct queue_counters {
  std::uint64_t recorded = 0, dropped = 0, blocked = 0, bytes = 0, chunks = 0, queued_bytes = 0,
                filtered_out = 0;
  std::string error;
};

class recording_queue {
 public:
  recording_queue(std::unique_ptr<writer> w, queue_options o);
  ~recording_queue();  // stop()s
  recording_queue(const recording_queue&) = delete;
  recording_queue& operator=(const recording_queue&) = delete;

  // Thread-safe.
  void push(envelope_ptr env);
  // The dispatch marker "`actor` handled `env` at `at_ns`" (handled_marker.hpp), built on the
  // writer thread; the filter judges `env`, so a marker is kept exactly when its message is.
  void push_handled(envelope_ptr env, std::string actor, std::int64_t at_ns);
  // Writes everything pushed before the call and waits for it.
  void flush();
  // Flushes, stops the writer thread and closes the bag (footer). Idempotent.
  result<void> stop();
  queue_counters counters() const;

 private:
  // An envelope as the tap handed it, or (handled_by set) the marker that points at it.
  struct item {
    envelope_ptr env;
    std::string handled_by;
    std::int64_t at_ns = 0;
    std::uint64_t mark_seq = 0;
  };
  void enqueue(item&& it);
  void run();
  bool append(const item& it);  // writer thread: filter and encode; false when filtered out
  void write_filling();         // writer thread

  std::unique_ptr<writer> writer_;
  queue_options opt_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, space_cv_, idle_cv_;
  std::vector<item> pending_;        // mu_: pushed, not yet taken by the writer
  std::size_t pending_bytes_ = 0;    // mu_: their estimated size (wakes the writer per chunk)
  std::size_t queued_bytes_ = 0;     // mu_: pushed and not yet on disk (the bound)
  bool wake_ = false;                // mu_: a chunk's worth is pending
  std::uint64_t flush_asked_ = 0, flush_done_ = 0;  // mu_: flush() generations
  std::uint64_t marks_ = 0;          // mu_: marker sequence numbers, in queue order
  bool stopping_ = false;
  bool stopped_ = false;
  queue_counters c_;
  chunk_builder filling_;  // writer thread only
  std::uint64_t written_bytes_ = 0, written_chunks_ = 0;  // writer thread; published under mu_
  std::string write_error_;                               // writer thread; published under mu_
  std::thread thread_;
};

}  // namespace gfdit::bag
