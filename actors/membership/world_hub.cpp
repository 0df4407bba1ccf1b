#include "actors/membership/world_hub.hpp"

#include <algorithm>

namespace gfdit {
namespace {

std::string where(const std::string& world, std::uint32_t round) {
  return "world '" + world + "' round " + std::to_string(round);
}
std::string where(const msg::world_join& m) { return where(m.world, m.round); }

msg::world_blobs failure(const msg::world_join& m, std::string error) {
  return msg::world_blobs{m.world, m.round, {}, std::move(error), false};
}

}  // namespace

void world_hub::fail(const key& k, round_state& r, std::string error, bool timed_out,
                     std::vector<world_hub_reply>& out) {
  for (auto& [rank, j] : r.ranks) {
    out.push_back({j.from, msg::world_blobs{k.first, k.second, {}, error, timed_out}});
    j.blob.clear();
  }
  r.error = std::move(error);
  ++failed_;
}

std::vector<world_hub_reply> world_hub::on_join(const msg::world_join& m, const std::string& from,
                                                std::int64_t now_us) {
  std::vector<world_hub_reply> out;
  // A join that cannot belong to any world is answered alone; the round it names is untouched.
  if (m.size < 1 || m.size > max_size || m.rank < 0 || m.rank >= m.size || m.timeout_ms <= 0) {
    out.push_back(
        {from, failure(m, where(m) + ": invalid join from '" + from + "' (rank " + std::to_string(m.rank) + ", size " +
                              std::to_string(m.size) + ", timeout " + std::to_string(m.timeout_ms) + " ms)")});
    return out;
  }
  const key k{m.world, m.round};
  const std::int64_t deadline = now_us + std::min(m.timeout_ms, max_timeout_ms) * 1000;
  auto [it, opened] = rounds_.try_emplace(k);
  round_state& r = it->second;
  if (opened) {
    r.size = m.size;
    r.opened_us = now_us;
    r.deadline_us = deadline;
  }
  if (!r.error.empty()) {
    out.push_back({from, failure(m, r.error)});
    return out;
  }
  r.deadline_us = std::min(r.deadline_us, deadline);
  // Both fail the whole round: everyone in it hears why, the offender included.
  if (m.size != r.size) {
    fail(k, r,
         where(m) + ": '" + from + "' (rank " + std::to_string(m.rank) + ") says size " + std::to_string(m.size) +
             " but the round was opened with size " + std::to_string(r.size),
         false, out);
    out.push_back({from, failure(m, r.error)});
    return out;
  }
  if (auto dup = r.ranks.find(m.rank); dup != r.ranks.end()) {
    fail(k, r,
         where(m) + ": rank " + std::to_string(m.rank) + " joined twice (from '" + dup->second.from + "' and '" + from +
             "')",
         false, out);
    out.push_back({from, failure(m, r.error)});
    return out;
  }
  r.ranks.emplace(m.rank, joined{from, m.blob});
  if (static_cast<std::int32_t>(r.ranks.size()) < r.size) return out;
  // Complete: every rank 0..size-1 is in (ranks are checked in range and unique).
  msg::world_blobs all{m.world, m.round, {}, "", false};
  all.blobs.reserve(r.ranks.size());
  for (auto& [rank, j] : r.ranks) all.blobs.push_back(std::move(j.blob));
  for (const auto& [rank, j] : r.ranks) out.push_back({j.from, all});
  rounds_.erase(it);
  ++completed_;
  return out;
}

std::vector<world_hub_reply> world_hub::on_tick(std::int64_t now_us) {
  std::vector<world_hub_reply> out;
  for (auto it = rounds_.begin(); it != rounds_.end();) {
    round_state& r = it->second;
    if (now_us < r.deadline_us) {
      ++it;
      continue;
    }
    if (r.error.empty()) {
      std::string missing;
      for (std::int32_t rank = 0; rank < r.size; ++rank)
        if (!r.ranks.count(rank)) {
          if (missing.size() > 200) {
            missing += ", ...";
            break;
          }
          missing += (missing.empty() ? "" : ", ") + std::to_string(rank);
        }
      fail(it->first, r,
           where(it->first.first, it->first.second) + ": timed out after " +
               std::to_string((now_us - r.opened_us) / 1000) + " ms with " + std::to_string(r.ranks.size()) + " of " +
               std::to_string(r.size) + " ranks joined; missing rank(s) " + missing,
           true, out);
    }
    it = rounds_.erase(it);
  }
  return out;
}

}  // namespace gfdit
