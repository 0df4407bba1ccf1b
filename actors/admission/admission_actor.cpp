// The admission shell: its parameters, and admission_driver hosted by driver_actor (which moves
// envelopes between the bus and the driver, where all routing lives). With `journal` set it
// keeps the journal of admitted requests (request_journal.hpp): each Admitted is on disk before
// it is sent, each RequestDone closes its record, and a restart resumes from what it holds.
#include "actors/admission/admission_driver.hpp"
#include "actors/admission/request_journal.hpp"
#include "actors/runtime/driver_actor.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/serving/serving_names.hpp"
#include "actors/serving/shell_params.hpp"
#include "messages/codec.hpp"

namespace gfdit {
namespace {

result<std::unique_ptr<admission_driver>> configure(context& ctx) {
  if (auto r = declare_shell_params(ctx); !r) return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("max_outstanding", 1024, "admitted, unfinished requests",
                                                  checks::above<std::int64_t>(0));
      !r)
    return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("gpus", 1, "for retry-after estimates"); !r) return r.err();
  if (auto r = ctx.params().declare<bool>("reject_infeasible", true); !r) return r.err();
  if (auto r = ctx.params().declare<std::string>(
          "journal", "",
          "file of admitted requests, so a restart loses none (relative: in the run folder; empty: off)");
      !r)
    return r.err();
  auto costs = load_costs(ctx);
  if (!costs) return costs.err();
  admission_driver_config cfg;
  cfg.core.max_outstanding = static_cast<std::size_t>(ctx.params().get<std::int64_t>("max_outstanding"));
  cfg.core.gpus = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("gpus"));
  cfg.core.reject_infeasible = ctx.params().get<bool>("reject_infeasible");
  cfg.speedup = ctx.params().get<double>("speedup");
  return std::make_unique<admission_driver>(std::move(*costs), cfg);
}

class admission_actor final : public driver_actor<admission_driver, configure> {
 public:
  // Opened here, not at configure: a launch file's probe runs configure and must touch no file.
  result<void> on_activate(context& ctx) override {
    if (auto r = driver_actor::on_activate(ctx); !r) return r;
    const std::string path = journal_path(ctx.params().get<std::string>("journal"));
    if (path.empty()) return {};
    request_journal::contents was;
    auto j = request_journal::open(path, was);
    if (!j) return j.err();
    journal_ = std::move(*j);
    driver().resume(was.open, was.next_id);
    ctx.log().info(
        "journal {}: {} request(s) still open, next id {}{}", path, was.open.size(), was.next_id,
        was.ignored_bytes ? " (a torn tail of " + std::to_string(was.ignored_bytes) + " bytes ignored)" : "");
    return {};
  }

 private:
  void handled(context& ctx, const inbound& in, const std::vector<outgoing>& out) override {
    if (!journal_) return;
    if (in.kind == route::topic && in.is<msg::request_done>()) {
      if (const auto* d = in.get<msg::request_done>())
        if (auto r = journal_->finished(d->request_id); !r) ctx.log().error("{}", r.err().what);
      return;
    }
    // The Admitted to the scheduler (its twin to the sender is the same bytes): on disk first.
    for (const auto& o : out)
      if (const auto* a = o.message.get<msg::admitted>(); a && o.destination == serving_names::scheduler)
        if (auto r = journal_->admitted(a->request_id, o.message.bytes()); !r) ctx.log().error("{}", r.err().what);
  }

  std::unique_ptr<request_journal> journal_;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::admission_actor, "gfdit.admission");
