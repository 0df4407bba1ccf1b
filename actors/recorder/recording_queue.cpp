#include "actors/recorder/recording_queue.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actors/recorder/handled_marker.hpp"

namespace gfdit::bag {
namespace {

// What an envelope will take in a chunk, near enough to bound memory and size the batches.
std::size_t estimated_bytes(const envelope& env) {
  return env.payload.size() + env.sender.size() + env.destination.size() + 48;
}

}  // namespace

recording_queue::recording_queue(std::unique_ptr<writer> w, queue_options o)
    : writer_(std::move(w)), opt_(std::move(o)) {
  opt_.keep.resolve();
  filling_.reserve(opt_.chunk_bytes + (64u << 10));
  thread_ = std::thread([this] { run(); });
}

recording_queue::~recording_queue() { (void)stop(); }

void recording_queue::push(envelope_ptr env) { enqueue({std::move(env), {}, 0, 0}); }

void recording_queue::push_handled(envelope_ptr env, std::string actor, std::int64_t at_ns) {
  enqueue({std::move(env), std::move(actor), at_ns, 0});
}

void recording_queue::enqueue(item&& it) {
  const std::size_t n = estimated_bytes(*it.env) + it.handled_by.size();
  std::unique_lock lock(mu_);
  // Once stop() began, the writer may already have written its last chunk: count, not keep.
  if (stopping_ || stopped_ || !c_.error.empty()) {
    ++c_.dropped;
    return;
  }
  if (queued_bytes_ >= opt_.max_queued_bytes) {
    if (opt_.on_full == overflow::drop) {
      ++c_.dropped;
      return;
    }
    ++c_.blocked;
    wake_ = true;
    work_cv_.notify_one();
    space_cv_.wait(lock, [&] { return queued_bytes_ < opt_.max_queued_bytes || stopping_ || stopped_ || !c_.error.empty(); });
    if (stopping_ || stopped_ || !c_.error.empty()) {
      ++c_.dropped;
      return;
    }
  }
  if (!it.handled_by.empty()) it.mark_seq = ++marks_;
  pending_.push_back(std::move(it));
  queued_bytes_ += n;
  pending_bytes_ += n;
  // The writer sleeps until a chunk's worth is pending (or its flush tick): one wake-up per
  // chunk, not per message.
  if (!wake_ && pending_bytes_ >= opt_.chunk_bytes) {
    wake_ = true;
    work_cv_.notify_one();
  }
}

bool recording_queue::append(const item& it) {
  if (!opt_.keep.empty() && !opt_.keep.match(*it.env)) return false;
  if (it.handled_by.empty()) filling_.append(*it.env);
  else filling_.append(handled_marker(*it.env, it.handled_by, it.mark_seq, it.at_ns));
  return true;
}

void recording_queue::write_filling() {
  if (filling_.empty()) return;
  const std::size_t n = filling_.bytes();
  if (write_error_.empty()) {
    if (auto r = writer_->write_chunk(filling_); r) {
      written_bytes_ += n + chunk_head_bytes;
      ++written_chunks_;
    } else {
      write_error_ = r.err().what;
    }
  }
  filling_.clear();
}

void recording_queue::run() {
  // Linux: a thread's nice value is its own (setpriority on the thread id).
  if (opt_.writer_nice != 0) (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), opt_.writer_nice);
  std::vector<item> batch;
  std::unique_lock lock(mu_);
  while (true) {
    const bool by_size = work_cv_.wait_for(lock, opt_.flush_every, [&] {
      return wake_ || flush_asked_ != flush_done_ || stopping_;
    }) && wake_;
    wake_ = false;
    const std::uint64_t flush_gen = flush_asked_;
    const bool stop = stopping_;
    batch.swap(pending_);
    const std::size_t batch_bytes = pending_bytes_;
    pending_bytes_ = 0;
    lock.unlock();

    std::uint64_t recorded = 0, filtered = 0;
    for (const auto& it : batch) {
      (append(it) ? recorded : filtered) += 1;
      if (filling_.bytes() >= opt_.chunk_bytes) write_filling();
    }
    batch.clear();  // lets the envelopes go
    // A partial chunk goes out on every flush tick, flush() and stop, so a killed process loses
    // little.
    if (!by_size || flush_gen != flush_done_ || stop) write_filling();

    lock.lock();
    queued_bytes_ -= batch_bytes;
    c_.recorded += recorded;
    c_.filtered_out += filtered;
    c_.bytes = written_bytes_;
    c_.chunks = written_chunks_;
    if (c_.error.empty() && !write_error_.empty()) c_.error = write_error_;
    space_cv_.notify_all();
    if (flush_done_ != flush_gen) {
      flush_done_ = flush_gen;
      idle_cv_.notify_all();
    }
    if (stop && pending_.empty()) break;
  }
  idle_cv_.notify_all();
}

void recording_queue::flush() {
  std::unique_lock lock(mu_);
  if (stopped_) return;
  const std::uint64_t mine = ++flush_asked_;
  work_cv_.notify_one();
  idle_cv_.wait(lock, [&] { return flush_done_ >= mine || stopped_; });
}

result<void> recording_queue::stop() {
  {
    std::unique_lock lock(mu_);
    if (stopped_) return {};
    stopping_ = true;
    work_cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  stopped_ = true;
  space_cv_.notify_all();
  idle_cv_.notify_all();
  auto r = writer_->close();
  if (!r && c_.error.empty()) c_.error = r.err().what;
  if (!c_.error.empty()) return make_error(errc::io, c_.error);
  return {};
}

queue_counters recording_queue::counters() const {
  std::lock_guard lock(mu_);
  auto c = c_;
  c.queued_bytes = queued_bytes_;
  return c;
}

}  // namespace gfdit::bag
