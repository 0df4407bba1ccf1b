#pragma once
// A Group is metadata: an ordered member list (world ranks), an epoch and a channel. Forming one
// does no communication and no allocation (the members live in a fixed array), so the scheduler
// can regroup between two tasks in microseconds. The order is part of the identity: it fixes the
// all_gather concatenation, the all_to_all slice mapping and the all_reduce summation order.
#include <algorithm>
#include <array>
#include <cstdint>
#include <span>

#include "common/hash.hpp"
#include "common/result.hpp"
#include "kernels/collectives/types.hpp"

namespace gfdit::coll {

class Group {
 public:
  Group() = default;

  // Validates and builds a group as seen from world rank `self` (which may be a non-member, e.g.
  // the scheduler). Members must be distinct ranks in [0, world_size).
  static result<Group> make(std::span<const std::int32_t> members, std::uint64_t epoch, int channel, int self,
                            int world_size) noexcept {
    const auto n = members.size();
    if (n == 0 || n > static_cast<std::size_t>(max_group_size))
      return make_error(errc::invalid_argument, "group: size must be 1..64");
    if (channel < 0 || channel >= max_model_channels)
      return make_error(errc::invalid_argument, "group: channel out of range");
    Group g;
    std::uint64_t seen = 0;  // world_size <= 64, so one word marks duplicates
    for (std::size_t i = 0; i < n; ++i) {
      const auto r = members[i];
      if (r < 0 || r >= world_size) return make_error(errc::invalid_argument, "group: rank out of range");
      if (seen & (1ull << r)) return make_error(errc::invalid_argument, "group: duplicate rank");
      seen |= 1ull << r;
      g.members_[i] = r;
      if (r == self) g.self_ = static_cast<int>(i);
    }
    g.size_ = static_cast<int>(n);
    g.epoch_ = epoch;
    g.channel_ = channel;
    g.mask_ = seen;
    g.id_ = hash_sequence(members);
    return g;
  }

  std::span<const std::int32_t> members() const noexcept { return {members_.data(), static_cast<std::size_t>(size_)}; }
  std::int32_t member(int i) const noexcept { return members_[static_cast<std::size_t>(i)]; }
  int size() const noexcept { return size_; }
  std::uint64_t id() const noexcept { return id_; }  // hash_sequence(members): order-sensitive
  std::uint64_t epoch() const noexcept { return epoch_; }
  int channel() const noexcept { return channel_; }
  std::uint64_t member_mask() const noexcept { return mask_; }
  // This process's index in the member list, or -1 when it is not a member.
  int self() const noexcept { return self_; }
  bool is_member() const noexcept { return self_ >= 0; }
  int index_of(std::int32_t rank) const noexcept {
    for (int i = 0; i < size_; ++i)
      if (members_[static_cast<std::size_t>(i)] == rank) return i;
    return -1;
  }
  bool contains(std::int32_t rank) const noexcept { return rank >= 0 && rank < 64 && (mask_ >> rank & 1u); }

 private:
  std::array<std::int32_t, max_group_size> members_{};
  std::uint64_t id_ = 0;
  std::uint64_t epoch_ = 0;
  std::uint64_t mask_ = 0;
  int size_ = 0;
  int self_ = -1;
  int channel_ = 0;
};

}  // namespace gfdit::coll
