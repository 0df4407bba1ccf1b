#pragma once
// The world hub: World set-up through the bus, as a pure core (hosted by the membership actor).
//   on_join(WorldJoin, from, now)  -> nothing yet, or one WorldBlobs per rank once the round is
//                                     complete (or failed)
//   on_tick(now)                   -> failed WorldBlobs for rounds open past their deadline
// A round is (world, round number). It opens with its first join and is complete when every
// rank 0..size-1 has joined once; then each rank's actor gets every blob in rank order, and the
// round is forgotten. A round fails at once, for everyone who joined it, when a rank joins twice
// or a join names another size than the round's: both mean two workers disagree on the world,
// which no amount of waiting fixes. Ranks that join a failed round later get the same error
// until its deadline. A round still incomplete at its deadline (the earliest join's arrival plus
// its timeout) fails naming the missing ranks. Time is only what the caller passes in.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "messages/world.hpp"

namespace gfdit {

// A WorldBlobs and the actor it goes to.
struct world_hub_reply {
  std::string to;
  msg::world_blobs blobs;
};

class world_hub {
 public:
  static constexpr std::int32_t max_size = 4096;
  static constexpr std::int64_t max_timeout_ms = 24 * 3600 * 1000;  // longer ones are clamped

  std::vector<world_hub_reply> on_join(const msg::world_join& m, const std::string& from, std::int64_t now_us);
  std::vector<world_hub_reply> on_tick(std::int64_t now_us);

  // Rounds open or failed (kept until their deadline).
  std::size_t rounds() const noexcept { return rounds_.size(); }
  std::uint64_t completed_rounds() const noexcept { return completed_; }
  std::uint64_t failed_rounds() const noexcept { return failed_; }

 private:
  struct joined {
    std::string from;
    msg::world_bytes blob;
  };
  struct round_state {
    std::int32_t size = 0;
    std::int64_t opened_us = 0;
    std::int64_t deadline_us = 0;
    std::map<std::int32_t, joined> ranks;
    std::string error;  // non-empty: failed, kept to answer late joiners until the deadline
  };
  using key = std::pair<std::string, std::uint32_t>;

  void fail(const key& k, round_state& r, std::string error, bool timed_out, std::vector<world_hub_reply>& out);

  std::map<key, round_state> rounds_;
  std::uint64_t completed_ = 0;
  std::uint64_t failed_ = 0;
};

}  // namespace gfdit
