#pragma once
// The recorder's path from the bus to the disk: any thread push()es an envelope, encoded at
// once into the current chunk buffer (no allocation once the buffers are warm: one copy of the
// bytes under a short lock); one writer thread writes full chunks. The buffered bytes are
// bounded: when the writer falls behind, overflow::block makes the pushing thread wait
// (backpressure on the bus), overflow::drop counts what it throws away. Nothing is lost
// without being counted.
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <deque>
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

  // Thread-safe. The filter judges `judged_by` when given (a dispatch marker is kept exactly
  // when the message it points at is).
  void push(const envelope& env, const envelope* judged_by = nullptr);
  // Writes everything queued and waits for it.
  void flush();
  // Flushes, stops the writer thread and closes the bag (footer). Idempotent.
  result<void> stop();
  queue_counters counters() const;

 private:
  void run();
  void next_buffer();  // mu_ held

  std::unique_ptr<writer> writer_;
  queue_options opt_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, space_cv_, idle_cv_;
  chunk_builder filling_;
  std::deque<chunk_builder> full_;
  std::vector<chunk_builder> spare_;  // written chunks, kept for their memory
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool flush_asked_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  queue_counters c_;
  std::thread thread_;
};

}  // namespace gfdit::bag
