#pragma once
// At most one log line per interval for an event a peer can cause at will (a refused key, a
// forged frame): a hostile peer must not be able to fill the disk or drown the other lines.
// Pure: the caller passes the time.
#include <chrono>
#include <cstdint>

namespace gfdit {

class log_limiter {
 public:
  using clock = std::chrono::steady_clock;
  explicit log_limiter(clock::duration interval = std::chrono::seconds(1)) : interval_(interval) {}

  // True when a line may be written now; `held` is then the number of events held back since
  // the last line (to say "and N more").
  bool allow(clock::time_point now, std::uint64_t& held) {
    if (written_ && now - last_ < interval_) {
      ++held_;
      return false;
    }
    written_ = true;
    last_ = now;
    held = held_;
    held_ = 0;
    return true;
  }

 private:
  clock::duration interval_;
  clock::time_point last_{};
  bool written_ = false;
  std::uint64_t held_ = 0;
};

}  // namespace gfdit
