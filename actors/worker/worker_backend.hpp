#pragma once
// What a worker runs its tasks on. The shell (worker_actor) owns the bus, the heartbeats and
// the World's set-up; a backend only computes. Its calls come from the worker's thread in the
// order the scheduler sent the messages; each finished task this worker reports (state_layout's
// `reports`: the group's first member) comes back through `report_fn`, from any thread, with
// how long after now (model microseconds) it is due, and the shell sends it to the scheduler.
//
//   sim       the cost model's time, no work (sim_backend): due when the modelled task ends
//   cpu, gpu  the DiT for real (dit_backend) on a thread of its own (serial_executor), so the
//             worker keeps beating while a task runs: due at once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "actors/serving/cost_model.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace gfdit {

class dit_backend;

class worker_backend {
 public:
  using report_fn = std::function<void(msg::task_done report, std::int64_t due_in_us)>;
  using warn_fn = std::function<void(const std::string&)>;  // any thread
  // A finished picture, for the request's reply_to; any thread, before the decode's report.
  using picture_fn = std::function<void(msg::result picture, std::string reply_to)>;

  virtual ~worker_backend() = default;
  // A task this worker is a member of, assigned at model time `now_us`.
  virtual void start(const msg::task_assign& t, std::int64_t now_us) = 0;
  // The request's state moves; an old holder outside the new group takes part here.
  virtual void reshard(const msg::reshard& m) = 0;
  // The request ended: drop whatever is left of it.
  virtual void forget(std::uint64_t request_id) = 0;
  // The checkpoints it serves (its hello says so); empty: every profiled model, seeded.
  virtual std::vector<msg::served_model> served_models() const { return {}; }
};

std::unique_ptr<worker_backend> make_sim_worker(std::int32_t id, std::shared_ptr<const cost_model> costs,
                                                worker_backend::report_fn report);
// Destroying it finishes the running task and drops the queued work.
std::unique_ptr<worker_backend> make_dit_worker(std::unique_ptr<dit_backend> dit, worker_backend::report_fn report,
                                                worker_backend::warn_fn warn, worker_backend::picture_fn picture);

}  // namespace gfdit
