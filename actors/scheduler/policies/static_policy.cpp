// static: the baseline of fixed-pipeline static parallelism (GF-DiT's baseline).
// Workers are cut, by id, into blocks of `degree` (default 4); each block becomes one group as
// soon as all its members have joined, and stays that group for life. Requests are served
// first-come first-served; a request keeps the group it started on until it ends, running every
// stage (prepare, all chunks, decode) there. A block that loses a member is not re-formed: like
// a communicator-based system, the survivors wait until the dead member is back. Requests whose group died
// restart, FCFS, on the next free group.
#include <algorithm>
#include <charconv>
#include <set>

#include "actors/scheduler/policies/builtin.hpp"
#include "messages/membership.hpp"

namespace gfdit {
namespace {

class static_policy final : public policy {
 public:
  explicit static_policy(std::int32_t degree) : degree_(degree) {}
  std::string_view name() const override { return "static"; }
  std::int32_t min_group_size() const override { return degree_; }

  void decide(const policy_view& v, std::vector<decision>& out) override {
    std::vector<std::uint64_t> idle;  // groups free to take a request, in id order of blocks
    form_blocks(v, out, idle);
    for (const auto& [block, gid] : blocks_) {
      auto g = v.groups.find(gid);
      if (g != v.groups.end() && !g->second.busy) idle.push_back(gid);
    }
    if (idle.empty() || v.waiting.empty()) return;
    std::sort(idle.begin(), idle.end(), [&](auto a, auto b) { return block_of_.at(a) < block_of_.at(b); });
    idle.erase(std::unique(idle.begin(), idle.end()), idle.end());

    std::set<std::uint64_t> taken;  // started on a group in this call
    for (auto gid : idle) {
      // The request bound to this group continues; else the oldest unbound one starts here.
      auto b = bound_by_group_.find(gid);
      if (b != bound_by_group_.end()) {
        if (v.waiting.count(b->second)) {
          out.push_back(decision::assign(b->second, gid));
          continue;
        }
        if (v.requests.count(b->second)) continue;  // running elsewhere? never: keep the group
        unbind(b->second);
      }
      // The oldest waiting request that is unbound and whose model every member serves.
      const auto& members = members_of_.at(gid);
      auto next = std::find_if(v.waiting.begin(), v.waiting.end(), [&](std::uint64_t rid) {
        if (taken.count(rid) || bound(v, rid)) return false;
        const auto& model = v.requests.at(rid).model;
        return std::all_of(members.begin(), members.end(),
                           [&](std::int32_t w) { return v.workers.at(w).serves(model); });
      });
      if (next == v.waiting.end()) continue;
      const std::uint64_t rid = *next;
      taken.insert(rid);
      bind(rid, gid);
      out.push_back(decision::assign(rid, gid));
    }
  }

 private:
  void form_blocks(const policy_view& v, std::vector<decision>& out, std::vector<std::uint64_t>& idle) {
    // Block k = worker ids [k*degree, (k+1)*degree), formed once, when all have joined.
    std::map<std::int32_t, std::vector<std::int32_t>> candidates;
    for (const auto& [id, w] : v.workers)
      if (w.alive && w.group_id == 0 && id >= 0 && !live_block(v, id / degree_)) candidates[id / degree_].push_back(id);
    for (auto& [block, members] : candidates) {
      if (static_cast<std::int32_t>(members.size()) != degree_) continue;
      decision d = decision::form(members);
      blocks_[block] = d.group_id;
      block_of_[d.group_id] = block;
      members_of_[d.group_id] = members;
      idle.push_back(d.group_id);
      out.push_back(std::move(d));
    }
  }
  // A block's group, once formed, stays; it is formed again (same members, next epoch) only
  // after it died and all its members are back.
  bool live_block(const policy_view& v, std::int32_t block) const {
    auto it = blocks_.find(block);
    return it != blocks_.end() && v.groups.count(it->second);
  }
  bool bound(const policy_view& v, std::uint64_t rid) {
    auto it = group_by_request_.find(rid);
    if (it == group_by_request_.end()) return false;
    if (v.groups.count(it->second)) return true;
    unbind(rid);  // its group died: it starts over on the next free group
    return false;
  }
  void bind(std::uint64_t rid, std::uint64_t gid) {
    group_by_request_[rid] = gid;
    bound_by_group_[gid] = rid;
  }
  void unbind(std::uint64_t rid) {
    auto it = group_by_request_.find(rid);
    if (it == group_by_request_.end()) return;
    auto b = bound_by_group_.find(it->second);
    if (b != bound_by_group_.end() && b->second == rid) bound_by_group_.erase(b);
    group_by_request_.erase(it);
  }

  std::int32_t degree_;
  std::map<std::int32_t, std::uint64_t> blocks_;  // block -> group id (formed once)
  std::map<std::uint64_t, std::int32_t> block_of_;
  std::map<std::uint64_t, std::vector<std::int32_t>> members_of_;
  std::map<std::uint64_t, std::uint64_t> group_by_request_;
  std::map<std::uint64_t, std::uint64_t> bound_by_group_;
};

}  // namespace

std::unique_ptr<policy> make_static_policy(std::string_view arg) {
  std::int32_t degree = 4;
  if (!arg.empty()) {
    auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), degree);
    if (ec != std::errc{} || p != arg.data() + arg.size() || degree < 1 || degree > 64) return nullptr;
  }
  return std::make_unique<static_policy>(degree);
}

}  // namespace gfdit
