#include "actors/recorder/recording_queue.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <new>
#include <set>

#include "actors/recorder/handled_marker.hpp"

namespace gfdit::bag {
namespace {

std::atomic<std::uint64_t> queue_ids{1};
constexpr std::uint64_t referenced_wake_bytes = 1u << 20;

// This thread's lanes, by queue id (ids are never reused, so a destroyed queue's entry can
// only miss). A thread that pushes to more queues than this gets a second lane for one of them
// later: still in order, since the writer merges by stamp.
struct lane_cache_entry {
  std::uint64_t queue = 0;
  recording_lane* lane = nullptr;
};
constexpr unsigned lane_cache_size = 4;
[[gnu::tls_model("initial-exec")]] thread_local lane_cache_entry lane_cache[lane_cache_size];
[[gnu::tls_model("initial-exec")]] thread_local unsigned lane_cache_victim = 0;

// The queues alive, so a thread that exits can tell the queues it pushed to that its lanes will
// get nothing more (the writer then frees them once drained). Never destroyed: threads may exit
// after the statics.
std::mutex& live_mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::set<std::uint64_t>& live_queues() {
  static auto* ids = new std::set<std::uint64_t>;
  return *ids;
}

// Set up at a thread's first lane, so its exit is seen; the hot path reads only lane_cache.
struct lane_owner {
  bool armed = false;
  ~lane_owner() {
    std::lock_guard lock(live_mu());
    for (auto& e : lane_cache)
      if (e.lane && live_queues().count(e.queue)) e.lane->orphan();
  }
};
thread_local lane_owner exit_hook;

std::size_t lane_capacity(const queue_options& o) {
  return std::clamp<std::size_t>(o.max_queued_bytes, std::size_t{4} << 10, std::size_t{16} << 20);
}

}  // namespace

recording_queue::recording_queue(std::unique_ptr<writer> w, queue_options o)
    : id_(queue_ids.fetch_add(1)), writer_(std::move(w)), opt_(std::move(o)), lane_bytes_(lane_capacity(opt_)) {
  opt_.keep.resolve();
  opt_.copy_limit = std::min(opt_.copy_limit, lane_bytes_ / 4);
  filling_.reserve(opt_.chunk_bytes + (64u << 10));
  {
    std::lock_guard lock(live_mu());
    live_queues().insert(id_);
  }
  thread_ = std::thread([this] { run(); });
}

recording_queue::~recording_queue() {
  {
    std::lock_guard lock(live_mu());
    live_queues().erase(id_);
  }
  (void)stop();
}

recording_lane& recording_queue::my_lane() {
  for (auto& e : lane_cache)
    if (e.queue == id_) return *e.lane;
  auto l = std::make_unique<recording_lane>(lane_bytes_);
  recording_lane* p = l.get();
  {
    std::lock_guard lock(lanes_mu_);
    lanes_.push_back(std::move(l));
  }
  exit_hook.armed = true;
  lane_cache[lane_cache_victim++ % lane_cache_size] = {id_, p};
  return *p;
}

char* recording_queue::reserve(recording_lane& l, std::size_t bytes, std::uint64_t referenced) {
  auto room = [&]() -> char* {
    // One referenced envelope may always wait, however large, or it could never be recorded.
    const std::uint64_t held = referenced ? l.referenced_bytes_pending() : 0;
    if (held > 0 && held + referenced > opt_.max_queued_bytes) return nullptr;
    return l.reserve(bytes);
  };
  if (char* p = room()) return p;
  if (opt_.on_full == overflow::drop) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  blocked_.fetch_add(1, std::memory_order_relaxed);
  waiting_.fetch_add(1);
  wake_writer();
  char* p = nullptr;
  {
    // The writer notifies under mu_ after it released room, so checking under mu_ loses no
    // wake-up; the timeout only bounds how late a stop() is seen.
    std::unique_lock lock(mu_);
    while (!(p = room()) && !closed_.load()) space_cv_.wait_for(lock, std::chrono::milliseconds(1));
  }
  waiting_.fetch_sub(1);
  if (!p) dropped_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void recording_queue::published(recording_lane& l) {
  l.publish();
  if (l.due(std::min(opt_.chunk_bytes, lane_bytes_ / 2))) wake_writer();
}

void recording_queue::wake_writer() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  work_cv_.notify_one();
}

namespace {

// The head of a record for `env` (its body's length left for the caller).
void fill_head(record_head& h, const envelope& env, record_form form, std::size_t bytes, std::uint64_t stamp) {
  h.bytes = static_cast<std::uint32_t>(padded(bytes));
  h.form = form;
  h.stamp = stamp;
  h.kind = env.kind;
  h.version = env.version;
  h.type_id = env.type_id;
  h.sender_len = static_cast<std::uint32_t>(env.sender.size());
  h.destination_len = static_cast<std::uint32_t>(env.destination.size());
  h.seq = env.seq;
  h.logical = env.time.logical;
  h.wall_ns = env.time.wall_ns;
  h.trace_id = env.trace_id;
  h.correlation = env.correlation;
}

char* put(char* out, std::string_view s) {
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

}  // namespace

record_head* recording_queue::begin_record(const envelope& env, record_form form, std::size_t bytes,
                                           std::uint64_t referenced, std::uint64_t stamp, recording_lane*& lane) {
  if (closed_.load(std::memory_order_relaxed)) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  lane = &my_lane();
  char* at = reserve(*lane, bytes, referenced);
  if (!at) return nullptr;
  auto* h = reinterpret_cast<record_head*>(at);
  fill_head(*h, env, form, bytes, stamp);
  return h;
}

void recording_queue::push(const envelope_ptr& p, std::uint64_t stamp) {
  const envelope& env = *p;
  const std::size_t copied = sizeof(record_head) + env.sender.size() + env.destination.size() + env.payload.size();
  const bool by_ref = copied > opt_.copy_limit;
  const std::size_t bytes = by_ref ? sizeof(record_head) + sizeof(envelope_ptr) : copied;
  recording_lane* l = nullptr;
  record_head* h = begin_record(env, by_ref ? record_form::ref : record_form::copy, bytes,
                                by_ref ? env.payload.size() : 0, stamp, l);
  if (!h) return;
  char* body = reinterpret_cast<char*>(h + 1);
  if (by_ref) {
    new (body) envelope_ptr(p);
    l->add_referenced(env.payload.size());
  } else {
    h->body_len = static_cast<std::uint32_t>(env.payload.size());
    put(put(put(body, env.sender), env.destination), env.payload);
  }
  published(*l);
  // Envelopes kept alive long cost their senders more than the writer's wake-up: the writer
  // lets go of them after every MiB of them.
  if (by_ref && l->referenced_due(referenced_wake_bytes)) wake_writer();
}

void recording_queue::push_handled(const envelope& env, std::string_view actor, std::int64_t at_ns,
                                   std::uint64_t stamp) {
  const std::size_t bytes = sizeof(record_head) + env.sender.size() + env.destination.size() + actor.size();
  recording_lane* l = nullptr;
  record_head* h = begin_record(env, record_form::marker, bytes, 0, stamp, l);
  if (!h) return;
  h->body_len = static_cast<std::uint32_t>(actor.size());
  h->at_ns = at_ns;
  put(put(put(reinterpret_cast<char*>(h + 1), env.sender), env.destination), actor);
  published(*l);
}

void recording_queue::write_record(recording_lane& l, std::uint64_t at) {
  const record_head& h = l.at(at);
  const envelope* env = &scratch_;
  if (h.form == record_form::ref) {
    env = &l.referenced(at);
  } else {
    const char* b = l.body(at);
    scratch_.type_id = h.type_id;
    scratch_.version = h.version;
    scratch_.seq = h.seq;
    scratch_.sender.assign(b, h.sender_len);
    scratch_.destination.assign(b + h.sender_len, h.destination_len);
    scratch_.kind = h.kind;
    scratch_.time = {h.logical, h.wall_ns};
    scratch_.trace_id = h.trace_id;
    scratch_.correlation = h.correlation;
    const char* tail = b + h.sender_len + h.destination_len;
    if (h.form == record_form::copy)
      scratch_.payload.assign(tail, h.body_len);
    else
      scratch_.payload.clear(), actor_.assign(tail, h.body_len);
  }
  const std::uint64_t mark = h.form == record_form::marker ? ++marks_ : 0;
  if (!opt_.keep.empty() && !opt_.keep.match(*env)) {
    ++filtered_;
  } else {
    if (h.form == record_form::marker)
      filling_.append(handled_marker(*env, actor_, mark, h.at_ns));
    else
      filling_.append(*env);
    ++recorded_;
  }
  if (h.form == record_form::ref) l.let_go(at, env->payload.size());
  if (filling_.bytes() >= opt_.chunk_bytes) write_filling();
}

void recording_queue::release_written() {
  for (auto& c : cursors_) c.lane->release(c.at);
  if (waiting_.load() > 0) {
    std::lock_guard lock(mu_);
    space_cv_.notify_all();
  }
}

bool recording_queue::drain(std::uint64_t wait_below, bool stop) {
  // The bound first, then what the lanes published: a record published after the bound was
  // read is either above it or concurrent with everything written now.
  const std::uint64_t bound = stop ? UINT64_MAX : record_stamp_bound();
  {
    std::lock_guard lock(lanes_mu_);
    cursors_.resize(lanes_.size());
    for (std::size_t i = 0; i < lanes_.size(); ++i) cursors_[i].lane = lanes_[i].get();
  }
  for (auto& c : cursors_) c.at = c.lane->released(), c.end = c.lane->published();
  auto front = [](cursor& c) -> const record_head* {  // skips pads
    for (; c.at < c.end; c.at += c.lane->at(c.at).bytes)
      if (c.lane->at(c.at).form != record_form::pad) return &c.lane->at(c.at);
    return nullptr;
  };
  // Each lane is in stamp order (one thread's); write the smallest front below the bound.
  for (std::uint64_t n = 0;; ++n) {
    cursor* best = nullptr;
    std::uint64_t best_stamp = bound;
    for (auto& c : cursors_)
      if (const record_head* h = front(c); h && h->stamp < best_stamp) best = &c, best_stamp = h->stamp;
    if (!best) break;
    write_record(*best->lane, best->at);
    best->at += best->lane->at(best->at).bytes;
    if (n % 256 == 255) release_written();  // let blocked senders go on during a long drain
  }
  release_written();
  // Done when nothing below `wait_below` is left, and, while a sender waits for room, nothing
  // at all (what is left sits above a stamp still being routed: come back at once).
  bool done = true;
  const bool someone_waits = waiting_.load() > 0;
  for (auto& c : cursors_)
    if (const record_head* h = front(c); h && (someone_waits || h->stamp < wait_below)) done = false;
  {
    std::lock_guard lock(lanes_mu_);
    std::erase_if(lanes_, [](const auto& l) { return l->drained_orphan(); });
  }
  return done;
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
      closed_.store(true);
    }
  }
  filling_.clear();
}

void recording_queue::run() {
  // Linux: a thread's nice value is its own (setpriority on the thread id).
  if (opt_.writer_nice != 0)
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), opt_.writer_nice);
  std::unique_lock lock(mu_);
  while (true) {
    const bool by_size = work_cv_.wait_for(lock, opt_.flush_every, [&] {
      return wake_ || flush_asked_ != flush_done_ || stopping_;
    }) && wake_;
    wake_ = false;
    const std::uint64_t flush_gen = flush_asked_;
    const bool stop = stopping_;
    const bool flushing = flush_gen != flush_done_ || stop;
    // flush() waits for what was stamped before it; stop writes everything (no push races it).
    const std::uint64_t wait_below = flushing && !stop ? flush_below_ : 0;
    lock.unlock();

    while (!drain(wait_below, stop)) std::this_thread::yield();  // an envelope still being routed
    // A partial chunk goes out on every flush tick, flush() and stop, so a killed process loses
    // little.
    if (!by_size || flushing) write_filling();

    lock.lock();
    c_.recorded = recorded_;
    c_.filtered_out = filtered_;
    c_.bytes = written_bytes_;
    c_.chunks = written_chunks_;
    if (c_.error.empty() && !write_error_.empty()) c_.error = write_error_;
    if (flush_done_ != flush_gen) {
      flush_done_ = flush_gen;
      idle_cv_.notify_all();
    }
    if (stop) break;
  }
  idle_cv_.notify_all();
}

void recording_queue::flush() {
  std::unique_lock lock(mu_);
  if (stopped_ || stopping_) return;
  const std::uint64_t mine = ++flush_asked_;
  flush_below_ = std::max(flush_below_, record_stamp());
  work_cv_.notify_one();
  idle_cv_.wait(lock, [&] { return flush_done_ >= mine || stopped_; });
}

result<void> recording_queue::stop() {
  {
    std::unique_lock lock(mu_);
    if (stopped_) return {};
    stopping_ = true;
    closed_.store(true);
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
  queue_counters c;
  {
    std::lock_guard lock(mu_);
    c = c_;
  }
  c.dropped = dropped_.load();
  c.blocked = blocked_.load();
  std::lock_guard lock(lanes_mu_);
  for (const auto& l : lanes_) c.queued_bytes += l->queued();
  c.lanes = lanes_.size();
  return c;
}

}  // namespace gfdit::bag
