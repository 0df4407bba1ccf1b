// The admission shell: binds admission_core to the graph. Clients send GenerateRequest here;
// the answer (Admitted or Rejected) goes back to the sender, Admitted also to the scheduler.
#include "actors/admission/admission_core.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving_graph/model_time.hpp"
#include "actors/serving_graph/shell_params.hpp"

namespace gfdit {
namespace {

class admission_actor : public actor {
 public:
  result<void> on_configure(context& ctx) override {
    if (auto r = declare_shell_params(ctx); !r) return r;
    if (auto r = ctx.params().declare<std::int64_t>("max_outstanding", 1024, "admitted, unfinished requests",
                                                    [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; });
        !r)
      return r;
    if (auto r = ctx.params().declare<std::int64_t>("gpus", 1, "for retry-after estimates"); !r) return r;
    if (auto r = ctx.params().declare<bool>("reject_infeasible", false); !r) return r;
    auto costs = load_costs(ctx);
    if (!costs) return costs.err();
    costs_ = *costs;
    admission_config cfg;
    cfg.max_outstanding = static_cast<std::size_t>(ctx.params().get<std::int64_t>("max_outstanding"));
    cfg.gpus = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("gpus"));
    cfg.reject_infeasible = ctx.params().get<bool>("reject_infeasible");
    core_ = std::make_unique<admission_core>(*costs_, cfg);
    const double speedup = ctx.params().get<double>("speedup");

    ctx.on<msg::generate_request>([this, &ctx, speedup](const msg::generate_request& req, const envelope& e) {
      auto out = core_->on_request(req, model_now_us(e, speedup));
      if (auto* a = std::get_if<msg::admitted>(&out)) {
        (void)ctx.send(e.sender, *a);
        if (auto r = ctx.send(serving_names::scheduler, *a); !r) ctx.log().error("{}", r.err().what);
      } else {
        (void)ctx.send(e.sender, std::get<msg::rejected>(out));
      }
    });
    ctx.subscribe<msg::request_done>(serving_names::done_topic,
                                     [this](const msg::request_done& d, const envelope&) { core_->on_request_done(d); });
    return {};
  }

 private:
  std::shared_ptr<const cost_model> costs_;
  std::unique_ptr<admission_core> core_;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::admission_actor, "gfdit.admission");
