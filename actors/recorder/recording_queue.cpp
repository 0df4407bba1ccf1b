#include "actors/recorder/recording_queue.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace gfdit::bag {

recording_queue::recording_queue(std::unique_ptr<writer> w, queue_options o)
    : writer_(std::move(w)), opt_(std::move(o)) {
  opt_.keep.resolve();
  filling_.reserve(opt_.chunk_bytes + (64u << 10));
  thread_ = std::thread([this] { run(); });
}

recording_queue::~recording_queue() { (void)stop(); }

void recording_queue::push(const envelope& env, const envelope* judged_by) {
  if (!opt_.keep.empty() && !opt_.keep.match(judged_by ? *judged_by : env)) {
    std::lock_guard lock(mu_);
    ++c_.filtered_out;
    return;
  }
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
    work_cv_.notify_one();
    space_cv_.wait(lock, [&] { return queued_bytes_ < opt_.max_queued_bytes || stopping_ || stopped_ || !c_.error.empty(); });
    if (stopping_ || stopped_ || !c_.error.empty()) {
      ++c_.dropped;
      return;
    }
  }
  const std::size_t before = filling_.bytes();
  filling_.append(env);
  queued_bytes_ += filling_.bytes() - before;
  ++c_.recorded;
  if (filling_.bytes() >= opt_.chunk_bytes) {
    full_.push_back(std::move(filling_));
    next_buffer();
    work_cv_.notify_one();
  }
}

void recording_queue::next_buffer() {
  if (!spare_.empty()) {
    filling_ = std::move(spare_.back());
    spare_.pop_back();
    return;
  }
  filling_ = chunk_builder{};
  filling_.reserve(opt_.chunk_bytes + (64u << 10));  // one allocation, not a doubling series
}

void recording_queue::run() {
  // Linux: a thread's nice value is its own (setpriority on the thread id).
  if (opt_.writer_nice != 0) (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), opt_.writer_nice);
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait_for(lock, opt_.flush_every, [&] {
      return !full_.empty() || flush_asked_ || stopping_ || queued_bytes_ >= opt_.max_queued_bytes;
    });
    // A partial chunk goes out on every flush tick, so a killed process loses little.
    if (!filling_.empty() && (full_.empty() || flush_asked_ || stopping_)) {
      full_.push_back(std::move(filling_));
      next_buffer();
    }
    while (!full_.empty()) {
      chunk_builder c = std::move(full_.front());
      full_.pop_front();
      const std::size_t n = c.bytes();
      writing_ = true;
      lock.unlock();
      auto r = writer_->write_chunk(c);  // clears c on success
      lock.lock();
      writing_ = false;
      queued_bytes_ -= n;
      if (r) {
        c_.bytes += n + chunk_head_bytes;
        ++c_.chunks;
      } else if (c_.error.empty()) {
        c_.error = r.err().what;
      }
      c.clear();
      if (spare_.size() < 8) spare_.push_back(std::move(c));
      space_cv_.notify_all();
    }
    if (stopping_ && !filling_.empty()) continue;
    if (flush_asked_) {
      flush_asked_ = false;
      idle_cv_.notify_all();
    }
    if (stopping_) break;
  }
  idle_cv_.notify_all();
}

void recording_queue::flush() {
  std::unique_lock lock(mu_);
  if (stopped_) return;
  flush_asked_ = true;
  work_cv_.notify_one();
  idle_cv_.wait(lock, [&] { return !flush_asked_ || stopped_; });
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
