// A scheduling policy as a plugin: "widest-first" gives each waiting request, in arrival order,
// as many free workers as it can use (the largest power of two of the free ones, up to 8).
// It is deliberately naive (it ignores deadlines); compare it with the built-ins (README.md):
//   GFDIT_PLUGIN_PATH=build/examples/custom_policy/libgfdit_widest_first.so
//   gfdit sim --workload launch/workloads/image-mix.yaml --gpus 8 --compare static,edf-best-fit,widest-first
#include <algorithm>

#include "actors/scheduler/policy.hpp"

namespace {

class widest_first final : public gfdit::policy {
 public:
  std::string_view name() const override { return "widest-first"; }

  void decide(const gfdit::policy_view& v, std::vector<gfdit::decision>& out) override {
    if (v.idle_workers == 0) return;
    gfdit::planner plan(v, out);
    for (const auto id : v.waiting) {  // ascending ids: arrival order
      if (plan.free_count() == 0) return;
      const auto degree = std::min<std::int32_t>(8, gfdit::floor_pow2(plan.free_count()));
      plan.place(v.requests.at(id), degree);
    }
  }
};

// Runs when the library is opened (plugins: in a launch file, or GFDIT_PLUGIN_PATH).
const bool registered = [] {
  gfdit::register_policy("widest-first", [](std::string_view) { return std::make_unique<widest_first>(); });
  return true;
}();

}  // namespace
