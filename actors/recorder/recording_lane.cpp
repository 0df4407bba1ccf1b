#include "actors/recorder/recording_lane.hpp"

#include <new>

namespace gfdit::bag {

// The ring gets a record head's worth of slack past its end, so a pad record (as small as 8
// bytes) can be read through record_head.
recording_lane::recording_lane(std::size_t capacity)
    : cap_(padded(capacity)), ring_(new char[cap_ + sizeof(record_head)]) {}

recording_lane::~recording_lane() {
  for (std::uint64_t at = released(), end = published(); at < end; at += this->at(at).bytes)
    if (this->at(at).form == record_form::ref) let_go(at, 0);
}

char* recording_lane::reserve(std::size_t bytes) {
  bytes = padded(bytes);
  const std::uint64_t h = next_head_;
  const std::size_t pos = static_cast<std::size_t>(h % cap_);
  const std::size_t pad = pos + bytes > cap_ ? cap_ - pos : 0;
  const std::uint64_t end = h + pad + bytes;
  if (end - tail_seen_ > cap_) {
    tail_seen_ = tail_.load(std::memory_order_acquire);
    if (end - tail_seen_ > cap_) return nullptr;
  }
  if (pad > 0) {
    auto* p = reinterpret_cast<record_head*>(ring_.get() + pos);
    p->bytes = static_cast<std::uint32_t>(pad);
    p->form = record_form::pad;
  }
  reserved_end_ = end;
  return ring_.get() + (h + pad) % cap_;
}

void recording_lane::publish() {
  next_head_ = reserved_end_;
  head_.store(reserved_end_, std::memory_order_release);
}

void recording_lane::let_go(std::uint64_t at, std::uint64_t payload_bytes) {
  auto* p = reinterpret_cast<envelope_ptr*>(ring_.get() + at % cap_ + sizeof(record_head));
  std::destroy_at(p);
  ref_done_.store(ref_done_.load(std::memory_order_relaxed) + payload_bytes, std::memory_order_release);
}

}  // namespace gfdit::bag
