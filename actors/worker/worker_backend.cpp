#include "actors/worker/worker_backend.hpp"

#include "actors/worker/dit_backend.hpp"
#include "actors/worker/serial_executor.hpp"
#include "actors/worker/sim_backend.hpp"

namespace gfdit {
namespace {

class sim_worker final : public worker_backend {
 public:
  sim_worker(std::int32_t id, std::shared_ptr<const cost_model> costs, report_fn report)
      : costs_(std::move(costs)), sim_(id, *costs_), report_(std::move(report)) {}

  void start(const msg::task_assign& t, std::int64_t now_us) override {
    auto run = sim_.start(t, now_us, true);
    if (run.report) report_(std::move(*run.report), run.end_us - now_us);
  }
  // The sim backend charges a move inside the task that needs it, and holds nothing.
  void reshard(const msg::reshard&) override {}
  void forget(std::uint64_t) override {}

 private:
  std::shared_ptr<const cost_model> costs_;
  sim_backend sim_;
  report_fn report_;
};

class dit_worker final : public worker_backend {
 public:
  dit_worker(std::unique_ptr<dit_backend> dit, report_fn report, warn_fn warn, picture_fn picture)
      : dit_(std::move(dit)), report_(std::move(report)), warn_(std::move(warn)), picture_(std::move(picture)) {}

  void start(const msg::task_assign& t, std::int64_t) override {
    executor_.post([this, t] {
      std::optional<msg::result> picture;
      auto report = dit_->run(t, &picture);
      if (picture) {
        if (!picture->error.empty()) warn_(picture->error);
        if (!t.request.reply_to.empty()) picture_(std::move(*picture), t.request.reply_to);
      }
      if (!report) return;
      if (!report->ok)
        warn_("task " + std::to_string(t.task_id) + " of request " + std::to_string(t.request_id) +
              " failed: " + report->error);
      report_(std::move(*report), 0);
    });
  }
  void reshard(const msg::reshard& m) override {
    executor_.post([this, m] {
      // A failure here surfaces as the task's failure on the new group (its collective times out).
      if (auto r = dit_->on_reshard(m); !r)
        warn_("reshard of request " + std::to_string(m.request_id) + ": " + r.err().what);
    });
  }
  void forget(std::uint64_t request_id) override {
    executor_.post([this, request_id] { dit_->forget(request_id); });
  }
  // Fixed at create(): safe beside the executor's thread.
  std::vector<msg::served_model> served_models() const override { return dit_->served_models(); }

 private:
  std::unique_ptr<dit_backend> dit_;
  report_fn report_;
  warn_fn warn_;
  picture_fn picture_;
  serial_executor executor_;  // last: stopped before what its jobs use
};

}  // namespace

std::unique_ptr<worker_backend> make_sim_worker(std::int32_t id, std::shared_ptr<const cost_model> costs,
                                                worker_backend::report_fn report) {
  return std::make_unique<sim_worker>(id, std::move(costs), std::move(report));
}

std::unique_ptr<worker_backend> make_dit_worker(std::unique_ptr<dit_backend> dit, worker_backend::report_fn report,
                                                worker_backend::warn_fn warn, worker_backend::picture_fn picture) {
  return std::make_unique<dit_worker>(std::move(dit), std::move(report), std::move(warn), std::move(picture));
}

}  // namespace gfdit
