#pragma once
// Admission: the front gate of the serving graph, as a pure core.
//   on_request(GenerateRequest, now) -> exactly one Admitted or Rejected (a `resend` of an open
//                                       request: its Admitted again, nothing admitted twice)
//   on_request_done(RequestDone)     -> frees a place in the bounded queue
//   on_worker_hello(WorkerHello)     -> which models the workers serve
// Every field is validated (a Rejected names the field and the rule); the queue of admitted,
// unfinished requests is bounded (full: "overloaded" with a retry-after estimate); requests
// that cannot meet their SLO even on an idle cluster are rejected when the policy asks for it.
// Request ids are assigned here, sequentially from `first_id`, so a replay assigns the same ids.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "actors/serving/cost_model.hpp"
#include "messages/membership.hpp"
#include "messages/serving.hpp"

namespace gfdit {

struct admission_config {
  std::size_t max_outstanding = 1024;  // admitted and not yet finished
  bool reject_infeasible = true;       // refuse, with the reason, a deadline no degree can meet
  std::int32_t gpus = 1;               // for the retry-after estimate
  std::uint64_t first_id = 1;
  double max_guidance = 100.0;
  std::size_t max_tag_bytes = 256;
  double max_slo_multiple = 1000.0;
  double max_slo_ms = 7.0 * 24 * 3600 * 1000;  // a week
  std::int32_t max_priority = 1000;
  double min_retry_after_ms = 100.0;
  double max_retry_after_ms = 600000.0;
};

using admission_output = std::variant<msg::admitted, msg::rejected>;

// The field-by-field check, usable on its own (gateways call it before sending). Returns the
// Rejected to send, or nothing when the request is valid.
std::optional<msg::rejected> validate_request(const msg::generate_request& r, const cost_model& costs,
                                              const admission_config& cfg);

class admission_core {
 public:
  admission_core(const cost_model& costs, admission_config cfg = {});

  admission_output on_request(const msg::generate_request& req, std::int64_t now_us);
  void on_request_done(const msg::request_done& done);
  // A worker says which checkpoints it serves: from the first hello on, a request for a model
  // no worker has said it holds is rejected, naming those served. (Before any, requests wait
  // in the scheduler for workers to come.)
  void on_worker_hello(const msg::worker_hello& hello);
  // A restarted admission takes up where its journal left off (request_journal.hpp): ids go on
  // from `next_id`, and the requests still open hold their places in the queue.
  void resume(const std::vector<msg::admitted>& open, std::uint64_t next_id);

  std::size_t outstanding() const noexcept { return outstanding_.size(); }
  std::uint64_t admitted_count() const noexcept { return admitted_; }
  std::uint64_t rejected_count() const noexcept { return rejected_; }
  const admission_config& config() const noexcept { return cfg_; }

 private:
  msg::rejected reject(const msg::generate_request& r, std::string code, std::string field, std::string rule,
                       std::int64_t now_us);

  // Why no worker runs `r` (empty: one does); a label past the model's classes, too.
  std::string unserved(const msg::generate_request& r) const;

  const cost_model& costs_;
  admission_config cfg_;
  std::map<std::int32_t, std::vector<msg::served_model>> served_;  // by worker, from its last hello
  std::uint64_t next_id_;
  std::uint64_t admitted_ = 0;
  std::uint64_t rejected_ = 0;
  // id -> estimated single-GPU work, for the retry-after estimate.
  std::map<std::uint64_t, double> outstanding_;
  // Open requests by client tag: a `resend` of one is answered with its Admitted again.
  std::map<std::string, msg::admitted> open_by_tag_;
  double outstanding_work_us_ = 0.0;
};

}  // namespace gfdit
