#pragma once
// The serving family: a client's request, admission's answer, the scheduler's tasks to workers,
// the workers' reports, and the request's end. Times are virtual or wall microseconds taken from
// message stamps by the shell (or the simulator's clock); no core reads a clock.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "messages/message.hpp"

namespace gfdit::msg {

struct generate_request {
  static constexpr std::string_view type_name = "serving.generate_request";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;  // 0 from a client; admission assigns it
  std::string model;
  std::int32_t width = 0;
  std::int32_t height = 0;
  std::int32_t frames = 1;
  std::int32_t steps = 0;
  double guidance = 0.0;
  std::uint64_t seed = 0;
  double slo_ms = 0.0;        // deadline after arrival; 0: use slo_multiple
  double slo_multiple = 0.0;  // deadline as a multiple of single-GPU time; both 0: best effort
  std::int32_t priority = 0;  // higher first among equals
  std::string client_tag;     // echoed back, for the client's own bookkeeping
  std::string class_name;     // optional label for per-class metrics
  // The class to draw (class-conditional models); -1: seed % classes (the seeded benchmark models).
  std::int32_t label = -1;
  // The actor the pictures (serving.result) and, with `progress`, a serving.progress per finished
  // chunk are sent to; empty: none (the result stays a hash in RequestDone).
  std::string reply_to;
  bool progress = false;
  // A resend of a request whose answer never came (admission's process may have died with it):
  // while a request of the same client_tag is open, admission answers its Admitted again
  // instead of admitting a second one.
  bool resend = false;
  GFDIT_FIELDS(request_id, model, width, height, frames, steps, guidance, seed, slo_ms, slo_multiple, priority,
               client_tag, class_name, label, reply_to, progress, resend)
};

// Admission accepted the request: it now belongs to the scheduler.
struct admitted {
  static constexpr std::string_view type_name = "serving.admitted";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  generate_request request;
  std::int64_t arrival_us = 0;
  bool has_deadline = false;
  std::int64_t deadline_us = 0;
  std::int64_t tokens = 0;         // latent tokens, from the model's profile
  double est_single_gpu_us = 0.0;  // the cost model's whole-request time at degree 1
  GFDIT_FIELDS(request_id, request, arrival_us, has_deadline, deadline_us, tokens, est_single_gpu_us)
};

// code: "invalid" (field and rule name what), "overloaded" (retry_after_ms says when),
// "infeasible" (the SLO cannot be met even on an idle cluster), "policy" (the scheduler's policy).
struct rejected {
  static constexpr std::string_view type_name = "serving.rejected";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::string client_tag;
  std::string code;
  std::string field;
  std::string rule;
  double retry_after_ms = 0.0;
  std::int64_t at_us = 0;
  GFDIT_FIELDS(request_id, client_tag, code, field, rule, retry_after_ms, at_us)
};

// Where a request's state (latent) lives. layout: "none" (not started), "owner_only" (one
// worker), "replicated" (every holder has all of it), "token_sharded" (holder i has the i-th
// token slice, in holder order), "checkpoint" (only the host copy taken at the last chunk end).
struct artifact {
  static constexpr std::string_view type_name = "serving.artifact";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::vector<std::int32_t> holders;
  std::string layout = "none";
  std::int32_t steps_done = 0;
  GFDIT_FIELDS(request_id, holders, layout, steps_done)
};

// One trajectory task for one group. stage: "prepare" | "denoise" | "decode".
struct task_assign {
  static constexpr std::string_view type_name = "serving.task_assign";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t task_id = 0;
  std::uint64_t request_id = 0;
  std::string model;
  std::int64_t tokens = 0;
  std::string stage;
  std::int32_t step_begin = 0;
  std::int32_t step_end = 0;  // exclusive; equal to step_begin outside denoise
  std::uint64_t group_id = 0;
  std::uint64_t epoch = 0;
  std::vector<std::int32_t> members;  // ordered; members[0] reports the task
  artifact input;
  std::string output_layout;
  std::int64_t issued_us = 0;
  generate_request request;  // what the client asked for (seed, shape, guidance): real backends compute from it
  GFDIT_FIELDS(task_id, request_id, model, tokens, stage, step_begin, step_end, group_id, epoch, members, input,
               output_layout, issued_us, request)
};

// Sent by the group's first member when the task ends (ok) or fails.
struct task_done {
  static constexpr std::string_view type_name = "serving.task_done";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t task_id = 0;
  std::uint64_t request_id = 0;
  std::string stage;
  std::int32_t step_begin = 0;
  std::int32_t step_end = 0;
  std::uint64_t group_id = 0;
  std::int32_t worker = 0;
  bool ok = true;
  std::string error;
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;
  std::int64_t reshard_us = 0;  // moving the input onto the group, inside [start, end)
  std::int64_t compute_us = 0;
  std::uint64_t result_hash = 0;  // decode on a real backend: hash of the final latent's bits (0: none)
  GFDIT_FIELDS(task_id, request_id, stage, step_begin, step_end, group_id, worker, ok, error, start_us, end_us,
               reshard_us, compute_us, result_hash)
};

// The report of task `t` run by `worker` from `start_us`: the task's identity copied, the outcome
// still to fill in.
inline task_done report_of(const task_assign& t, std::int32_t worker, std::int64_t start_us) {
  task_done d;
  d.task_id = t.task_id;
  d.request_id = t.request_id;
  d.stage = t.stage;
  d.step_begin = t.step_begin;
  d.step_end = t.step_end;
  d.group_id = t.group_id;
  d.worker = worker;
  d.start_us = start_us;
  return d;
}

// A request changes group: its state moves from `from` to `to_members` in `to_layout` before
// the task `task_id` runs. Spans the union of both member lists.
struct reshard {
  static constexpr std::string_view type_name = "serving.reshard";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::uint64_t task_id = 0;
  artifact from;
  std::vector<std::int32_t> to_members;
  std::string to_layout;
  std::int64_t bytes = 0;
  double est_us = 0.0;
  GFDIT_FIELDS(request_id, task_id, from, to_members, to_layout, bytes, est_us)
};

// The request yields its group at the chunk boundary `at_step`; its state stays on the holders.
struct preempt {
  static constexpr std::string_view type_name = "serving.preempt";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::int32_t at_step = 0;
  std::string reason;
  GFDIT_FIELDS(request_id, at_step, reason)
};

// To the scheduler. request_id 0: the request sent with `client_tag` (a client that has not yet
// heard its id); one that has not arrived yet is cancelled when it does.
struct cancel {
  static constexpr std::string_view type_name = "serving.cancel";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::string reason;
  std::string client_tag;
  GFDIT_FIELDS(request_id, reason, client_tag)
};

// The scheduler's view for live tools (`gfdit top`), published on topic "serving.state" every
// few ticks: the counts, every worker, and the first `max_requests` live requests (running
// ones first, then by id).
struct request_state {
  static constexpr std::string_view type_name = "serving.request_state";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t id = 0;
  std::string model;
  std::string class_name;
  std::string stage;  // the next (or running) task's: prepare | denoise | decode
  std::int32_t steps_done = 0;
  std::int32_t steps_total = 0;
  bool running = false;
  std::int32_t group_size = 0;  // running: its group's; else where its state lives
  std::int32_t regroupings = 0;
  GFDIT_FIELDS(id, model, class_name, stage, steps_done, steps_total, running, group_size, regroupings)
};
struct worker_state {
  static constexpr std::string_view type_name = "serving.worker_state";
  static constexpr std::uint16_t type_version = 1;
  std::int32_t id = 0;
  bool alive = false;
  bool busy = false;
  std::uint64_t group_id = 0;
  GFDIT_FIELDS(id, alive, busy, group_id)
};
struct cluster_state {
  static constexpr std::string_view type_name = "serving.cluster_state";
  static constexpr std::uint16_t type_version = 1;
  static constexpr std::size_t max_requests = 64;
  std::int64_t at_us = 0;
  std::int32_t waiting = 0;
  std::int32_t running = 0;
  std::int32_t groups = 0;
  std::uint64_t tasks_dispatched = 0;
  std::uint64_t reshards = 0;
  std::vector<worker_state> workers;
  std::vector<request_state> requests;
  GFDIT_FIELDS(at_us, waiting, running, groups, tasks_dispatched, reshards, workers, requests)
};

// A finished chunk of denoising steps, to the request's reply_to when it asked for progress.
struct progress {
  static constexpr std::string_view type_name = "serving.progress";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::string client_tag;
  std::int32_t step = 0;  // steps done
  std::int32_t total = 0;
  std::int32_t group_size = 0;  // workers the chunk ran on
  GFDIT_FIELDS(request_id, client_tag, step, total, group_size)
};

// The picture of a finished request, from the worker that decoded it straight to the request's
// reply_to (the control plane never carries pixels). Sent before that worker reports the decode
// task, so it normally arrives before the RequestDone; a receiver must accept either order.
struct result {
  static constexpr std::string_view type_name = "serving.result";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::string client_tag;
  std::string media_type;  // "image/png"
  std::int32_t width = 0;
  std::int32_t height = 0;
  std::vector<std::uint8_t> data;  // msgpack bin
  std::string error;               // non-empty: no picture (data empty)
  GFDIT_FIELDS(request_id, client_tag, media_type, width, height, data, error)
};

// The one terminal message of an admitted request. status: "done" | "rejected" | "cancelled" |
// "failed". latency = queue + run + reshard (queue holds every wait, messages included).
struct request_done {
  static constexpr std::string_view type_name = "serving.request_done";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t request_id = 0;
  std::string client_tag;
  std::string class_name;
  std::string status;
  std::string error;
  std::int64_t arrival_us = 0;
  std::int64_t finish_us = 0;
  bool has_deadline = false;
  std::int64_t deadline_us = 0;
  bool slo_met = false;
  std::int64_t latency_us = 0;
  std::int64_t queue_us = 0;
  std::int64_t run_us = 0;
  std::int64_t reshard_us = 0;
  std::int32_t regroupings = 0;  // times the request moved to another group
  std::int32_t preemptions = 0;
  std::int32_t retries = 0;       // tasks re-run after a failure
  std::string result_ref;         // where the output lives ("worker:<id>/request:<id>")
  std::uint64_t result_hash = 0;  // the decode task's result_hash (0: none, e.g. the sim backend)
  // GPU time its tasks held: (end - start) x group size, summed, failed tries included. Lets a
  // client that sees only RequestDones compute the cluster's busy fraction.
  std::int64_t gpu_us = 0;
  GFDIT_FIELDS(request_id, client_tag, class_name, status, error, arrival_us, finish_us, has_deadline, deadline_us,
               slo_met, latency_us, queue_us, run_us, reshard_us, regroupings, preemptions, retries, result_ref,
               result_hash, gpu_us)
};

}  // namespace gfdit::msg
