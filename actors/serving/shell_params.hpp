#pragma once
// Parameters every serving shell declares alike: the graph's time compression and the cost
// profiles (empty: the stock profiles compiled in).
#include <memory>

#include "actors/runtime/context.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/serving/cost_model.hpp"

namespace gfdit {

inline result<void> declare_shell_params(context& ctx) {
  if (auto r = ctx.params().declare<double>("speedup", 1.0, "model microseconds per wall microsecond",
                                            checks::above<double>(0.0));
      !r)
    return r;
  return ctx.params().declare<std::string>("profiles", "", "cost profile file (empty: stock)");
}

inline result<std::shared_ptr<const cost_model>> load_costs(context& ctx) {
  return cost_model::load(ctx.params().get<std::string>("profiles"));
}

}  // namespace gfdit
