// The scheduler shell: its parameters, and scheduler_driver hosted by driver_actor (which moves
// envelopes between the bus and the driver, where all routing lives, and sends the driver's
// tick every `tick_ms`). With `journal` set (admission's, request_journal.hpp), a restarted
// scheduler sends itself every request the journal holds open, so each runs again; the
// workers come back through their heartbeats (the driver asks them for their hellos).
#include <chrono>
#include <filesystem>

#include "actors/admission/request_journal.hpp"
#include "actors/runtime/driver_actor.hpp"
#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/registry.hpp"
#include "actors/scheduler/scheduler_driver.hpp"
#include "actors/serving/shell_params.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;

result<std::unique_ptr<scheduler_driver>> configure(context& ctx) {
  if (auto r = declare_shell_params(ctx); !r) return r.err();
  if (auto r = ctx.params().declare<std::string>("policy", "edf-best-fit", "a built-in or plugin policy"); !r)
    return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("chunk_steps", 4, "denoising steps per task",
                                                  checks::above<std::int64_t>(0));
      !r)
    return r.err();
  if (auto r =
          ctx.params().declare<std::int64_t>("gpus", 0, "workers in the graph (0: unknown), checked against the policy",
                                             checks::at_least<std::int64_t>(0));
      !r)
    return r.err();
  if (auto r = ctx.params().declare<std::string>(
          "journal", "", "admission's journal: open requests re-run after a restart (relative: in the run folder)");
      !r)
    return r.err();
  if (auto r = ctx.params().declare<std::int64_t>("first_task_id", 1, "task ids start here (a restart starts higher)",
                                                  checks::above<std::int64_t>(0));
      !r)
    return r.err();
  // A journal already there means an earlier life of this scheduler: its tasks may still run
  // and report, so this one numbers its own above them (ms since the epoch, 2^20 ids each).
  if (const auto path = journal_path(ctx.params().get<std::string>("journal")); !path.empty() && fs::exists(path)) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    const std::int64_t above = ms << 20;
    if (above > ctx.params().get<std::int64_t>("first_task_id"))
      if (auto r = ctx.params().set("first_task_id", above); !r) return r.err();
  }
  auto costs = load_costs(ctx);
  if (!costs) return costs.err();
  scheduler_driver_config cfg;
  cfg.policy = ctx.params().get<std::string>("policy");
  cfg.core.chunk_steps = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("chunk_steps"));
  cfg.speedup = ctx.params().get<double>("speedup");
  cfg.gpus = static_cast<std::int32_t>(ctx.params().get<std::int64_t>("gpus"));
  cfg.self = ctx.name();
  cfg.core.first_task_id = static_cast<std::uint64_t>(ctx.params().get<std::int64_t>("first_task_id"));
  return scheduler_driver::create(std::move(*costs), cfg);
}

class scheduler_actor final : public driver_actor<scheduler_driver, configure> {
 public:
  // Read at configure, before any actor of the process is active: what the journal held when
  // this life began (admission, once active, appends this life's own admissions to it).
  result<void> on_configure(context& ctx) override {
    if (auto r = driver_actor::on_configure(ctx); !r) return r;
    const std::string path = journal_path(ctx.params().get<std::string>("journal"));
    if (path.empty()) return {};
    auto was = request_journal::read(path);
    if (!was) return was.err();
    open_ = std::move(was->open);
    return {};
  }
  // As messages to itself, so a recorder sees (and a replay re-drives) the re-admissions.
  result<void> on_activate(context& ctx) override {
    if (auto r = driver_actor::on_activate(ctx); !r) return r;
    for (const auto& a : open_)
      if (auto r = ctx.send(ctx.name(), a); !r) return r;
    if (!open_.empty()) ctx.log().info("journal: {} open request(s) run again", open_.size());
    open_.clear();
    return {};
  }

 private:
  std::vector<msg::admitted> open_;
};

}  // namespace
}  // namespace gfdit

GFDIT_REGISTER_ACTOR(gfdit::scheduler_actor, "gfdit.scheduler");
