// edf-best-fit: earliest deadline first, each request at the smallest degree that still meets
// its deadline, then the surplus GPUs to the requests with the least slack.
//
// At every event with free workers:
//  1. Order the waiting requests: those that can still meet their deadline (by deadline), then
//     those that cannot at any degree (by deadline: late, but not starved), then best-effort
//     requests (by arrival). Priority breaks ties.
//  2. Give each, in that order, the smallest degree d with
//       now + reshard (if its members change) + remaining(d) * (1 + margin) <= deadline.
//     When fewer workers are free than that, demote it to what is free rather than make it
//     wait: a lower degree now beats a pause that starves it.
//  3. Hand the remaining free workers out in rounds, in the same order, doubling a request's
//     degree while that makes its next task at least 5% faster.
// Running requests come back at every chunk boundary and go through the same steps, so a
// request with slack is demoted when urgent work arrives and promoted again when it leaves.
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <string>

#include "actors/scheduler/policies/builtin.hpp"

namespace gfdit {
namespace {

class edf_best_fit_policy final : public policy {
 public:
  explicit edf_best_fit_policy(double margin) : margin_(margin) {}
  std::string_view name() const override { return "edf-best-fit"; }

  void decide(const policy_view& v, std::vector<decision>& out) override {
    if (v.idle_workers == 0 || v.waiting.empty()) return;
    struct item {
      const request_view* r;
      int cls;  // 0 can meet its deadline, 1 cannot, 2 has none
      std::int32_t need;
      std::int32_t degree = 0;
    };
    planner plan(v, out);
    std::int32_t free = plan.free_count();
    const std::size_t k = static_cast<std::size_t>(free);
    // Walk the queue in deadline order: the first k that can still make their deadline are the
    // head of the order, so the walk usually stops early. Those that cannot (late) and those
    // without a deadline (last in the index) fill any places left, late ones first.
    std::vector<item> items, late, best_effort;
    auto classify = [&](const request_view& r) {
      const std::int32_t maxd = r.profile ? r.profile->max_degree : 1;
      item it{&r, 1, 1};
      const double budget = static_cast<double>(r.deadline_us - v.now_us);
      for (int s = 0; s < max_degree_slots && slot_degree(s) <= maxd; ++s) {
        const bool moves = !r.holders.empty() && static_cast<std::int32_t>(r.holders.size()) != slot_degree(s);
        if ((moves ? r.reshard_us : 0.0) + r.remaining_us[s] * (1.0 + margin_) <= budget) {
          it.cls = 0;
          it.need = slot_degree(s);
          return it;
        }
      }
      it.need = std::min(maxd, slot_degree(fastest_slot(r, 0.05)));
      return it;
    };
    for (const auto& e : v.waiting_by_deadline) {
      if (items.size() >= k) break;
      const request_view& r = *e.r;
      if (!r.has_deadline) {
        if (items.size() + late.size() + best_effort.size() >= k) break;
        best_effort.push_back(item{&r, 2, 1});
        continue;
      }
      item it = classify(r);
      if (it.cls == 0)
        items.push_back(it);
      else if (late.size() < k)
        late.push_back(it);  // late only once the margin is counted
    }
    for (const auto& e : v.waiting_late) {
      if (items.size() + late.size() >= k) break;
      late.push_back(classify(*e.r));
    }
    std::stable_sort(late.begin(), late.end(), [](const item& a, const item& b) {
      return a.r->deadline_us != b.r->deadline_us ? a.r->deadline_us < b.r->deadline_us : a.r->id < b.r->id;
    });
    for (auto* extra : {&late, &best_effort})
      for (const auto& it : *extra)
        if (items.size() < k) items.push_back(it);

    // 2. best fit, demoted to what is free.
    std::size_t placed = 0;
    for (; placed < items.size() && free > 0; ++placed) {
      item& it = items[placed];
      it.degree = std::min(it.cls == 0 ? it.need : 1, floor_pow2(free));
      free -= it.degree;
    }
    items.resize(placed);
    // 3. surplus, in rounds: first to the requests behind schedule (they needed more than one
    // GPU, or cannot make it at all), then shortest remaining work first, which is what lowers
    // the mean latency most.
    std::vector<item*> surplus;
    for (auto& it : items) surplus.push_back(&it);
    std::stable_sort(surplus.begin(), surplus.end(), [](const item* a, const item* b) {
      const bool ba = a->cls == 1 || (a->cls == 0 && a->need > 1);
      const bool bb = b->cls == 1 || (b->cls == 0 && b->need > 1);
      if (ba != bb) return ba;
      if (ba) return false;  // keep EDF order among those behind
      return a->r->remaining_us[0] < b->r->remaining_us[0];
    });
    for (bool grew = true; grew && free > 0;) {
      grew = false;
      for (item* ip : surplus) {
        item& it = *ip;
        const std::int32_t maxd = it.r->profile ? it.r->profile->max_degree : 1;
        const int s = degree_slot(it.degree);
        if (it.degree * 2 > maxd || s + 1 >= max_degree_slots || free < it.degree) continue;
        if (!(it.r->next_task_us[s + 1] < it.r->next_task_us[s] * 0.95)) continue;
        free -= it.degree;
        it.degree *= 2;
        grew = true;
      }
    }
    for (auto& it : items) plan.place(*it.r, it.degree);
  }

 private:
  double margin_;
};

}  // namespace

std::unique_ptr<policy> make_edf_best_fit_policy(std::string_view arg) {
  double margin = 0.05;
  if (!arg.empty()) {
    const std::string s(arg);
    char* end = nullptr;
    margin = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !(margin >= 0.0 && margin <= 10.0)) return nullptr;
  }
  return std::make_unique<edf_best_fit_policy>(margin);
}

std::vector<std::pair<std::string, policy_factory>> builtin_policies() {
  return {{"static", make_static_policy},
          {"fcfs-elastic", make_fcfs_elastic_policy},
          {"srtf", make_srtf_policy},
          {"edf-best-fit", make_edf_best_fit_policy}};
}

}  // namespace gfdit
