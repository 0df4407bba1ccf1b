#pragma once
// Live mode runs the serving cores on the clock of the messages: a core's `now` is the stamp of
// the message that woke it, never a clock read, so a recorded run replays exactly. `speedup`
// compresses time for demos and tests: one wall microsecond counts as `speedup` model
// microseconds, in every shell of a graph alike.
#include <chrono>
#include <cstdint>

#include "messages/envelope.hpp"

namespace gfdit {

inline std::int64_t model_now_us(std::int64_t wall_ns, double speedup) {
  return static_cast<std::int64_t>(static_cast<double>(wall_ns) / 1000.0 * speedup);
}

inline std::int64_t model_now_us(const envelope& env, double speedup) {
  return model_now_us(env.time.wall_ns, speedup);
}

inline std::chrono::nanoseconds wall_delay(std::int64_t model_us, double speedup) {
  const double ns = static_cast<double>(model_us) * 1000.0 / speedup;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns < 0 ? 0 : ns));
}

}  // namespace gfdit
