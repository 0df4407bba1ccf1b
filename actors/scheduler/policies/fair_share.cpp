// fcfs-elastic and srtf: elastic degree by fair share.
// At every chunk boundary the free workers are shared among the waiting requests in the
// policy's order (arrival for fcfs-elastic, shortest remaining single-GPU time for srtf):
// each gets the power of two nearest below free/(requests left), capped at the degree beyond
// which its next task stops getting faster. With more requests than free workers, the first
// ones get one GPU each. srtf is preemptive at chunk boundaries: a long request that reaches a
// boundary competes with the newcomers like any other.
#include <algorithm>

#include "actors/scheduler/policies/builtin.hpp"

namespace gfdit {
namespace {

class fair_share_policy final : public policy {
 public:
  explicit fair_share_policy(bool srtf) : srtf_(srtf) {}
  std::string_view name() const override { return srtf_ ? "srtf" : "fcfs-elastic"; }

  void decide(const policy_view& v, std::vector<decision>& out) override {
    if (v.idle_workers == 0 || v.waiting.empty()) return;
    planner plan(v, out);
    const std::size_t k = std::min<std::size_t>(v.waiting.size(), plan.free_count());
    std::vector<const request_view*> order;
    if (!srtf_) {
      // Ids grow with arrival, so the waiting set is already in FCFS order.
      for (auto id : v.waiting) {
        order.push_back(&v.requests.at(id));
        if (order.size() == k) break;
      }
    } else {
      for (auto id : v.waiting) order.push_back(&v.requests.at(id));
      auto less = [](const request_view* a, const request_view* b) {
        if (a->remaining_us[0] != b->remaining_us[0]) return a->remaining_us[0] < b->remaining_us[0];
        return a->id < b->id;
      };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), less);
      order.resize(k);
    }
    const std::size_t n = v.waiting.size();
    for (std::size_t i = 0; i < order.size() && plan.free_count() > 0; ++i) {
      const request_view& r = *order[i];
      const std::int32_t share =
          floor_pow2(std::max<std::int32_t>(1, plan.free_count() / static_cast<std::int32_t>(n - i)));
      std::int32_t d = std::min(share, slot_degree(fastest_slot(r, 0.05)));
      d = std::min(d, r.profile ? r.profile->max_degree : 1);
      while (d >= 1 && !plan.place(r, d)) d /= 2;
    }
  }

 private:
  bool srtf_;
};

}  // namespace

std::unique_ptr<policy> make_fcfs_elastic_policy(std::string_view arg) {
  return arg.empty() ? std::make_unique<fair_share_policy>(false) : nullptr;
}
std::unique_ptr<policy> make_srtf_policy(std::string_view arg) {
  return arg.empty() ? std::make_unique<fair_share_policy>(true) : nullptr;
}

}  // namespace gfdit
