#include "actors/admission/admission_core.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>

namespace gfdit {

namespace {

msg::rejected make_rejected(const msg::generate_request& r, std::string code, std::string field, std::string rule) {
  msg::rejected out;
  out.request_id = r.request_id;
  out.client_tag = r.client_tag.size() <= 256 ? r.client_tag : r.client_tag.substr(0, 256);
  out.code = std::move(code);
  out.field = std::move(field);
  out.rule = std::move(rule);
  return out;
}

}  // namespace

std::optional<msg::rejected> validate_request(const msg::generate_request& r, const cost_model& costs,
                                              const admission_config& cfg) {
  auto bad = [&](std::string field, std::string rule) {
    return make_rejected(r, "invalid", std::move(field), std::move(rule));
  };
  if (r.client_tag.size() > cfg.max_tag_bytes)
    return bad("client_tag", "at most " + std::to_string(cfg.max_tag_bytes) + " bytes");
  if (r.class_name.size() > cfg.max_tag_bytes)
    return bad("class_name", "at most " + std::to_string(cfg.max_tag_bytes) + " bytes");
  if (r.reply_to.size() > cfg.max_tag_bytes)
    return bad("reply_to", "at most " + std::to_string(cfg.max_tag_bytes) + " bytes");
  if (r.label < -1) return bad("label", "must be a class (>= 0), or -1 for seed % classes");
  if (r.request_id != 0) return bad("request_id", "must be 0: admission assigns ids");
  if (r.model.empty()) return bad("model", "required");
  const model_profile* p = costs.find(r.model);
  if (!p) return bad("model", "unknown model '" + r.model.substr(0, 64) + "'");
  auto side = [&](const char* name, std::int32_t v) -> std::optional<msg::rejected> {
    if (v < p->min_side || v > p->max_side)
      return bad(
          name, "must be in [" + std::to_string(p->min_side) + ", " + std::to_string(p->max_side) + "] for " + p->name);
    if (v % p->spatial_stride != 0)
      return bad(name, "must be a multiple of " + std::to_string(p->spatial_stride) + " for " + p->name);
    return std::nullopt;
  };
  if (auto e = side("width", r.width)) return e;
  if (auto e = side("height", r.height)) return e;
  if (p->video) {
    if (r.frames < 1 || r.frames > p->max_frames)
      return bad("frames", "must be in [1, " + std::to_string(p->max_frames) + "]");
    if ((r.frames - 1) % p->temporal_stride != 0)
      return bad("frames", "must be 1 + a multiple of " + std::to_string(p->temporal_stride));
  } else if (r.frames != 1) {
    return bad("frames", "must be 1 for the image model " + p->name);
  }
  if (r.steps < 1 || r.steps > p->max_steps)
    return bad("steps", "must be in [1, " + std::to_string(p->max_steps) + "]");
  if (!std::isfinite(r.guidance) || r.guidance < 0.0 || r.guidance > cfg.max_guidance)
    return bad("guidance", "must be finite and in [0, " + std::to_string(cfg.max_guidance) + "]");
  if (!std::isfinite(r.slo_ms) || r.slo_ms < 0.0 || r.slo_ms > cfg.max_slo_ms)
    return bad("slo_ms", "must be finite and in [0, " + std::to_string(cfg.max_slo_ms) + "]");
  if (!std::isfinite(r.slo_multiple) || r.slo_multiple < 0.0 || r.slo_multiple > cfg.max_slo_multiple)
    return bad("slo_multiple", "must be finite and in [0, " + std::to_string(cfg.max_slo_multiple) + "]");
  if (r.slo_ms > 0.0 && r.slo_multiple > 0.0) return bad("slo_multiple", "give slo_ms or slo_multiple, not both");
  if (r.slo_multiple > 0.0 && r.slo_multiple < 1.0)
    return bad("slo_multiple", "must be >= 1 (a multiple of the single-GPU time)");
  if (r.priority < -cfg.max_priority || r.priority > cfg.max_priority)
    return bad("priority",
               "must be in [-" + std::to_string(cfg.max_priority) + ", " + std::to_string(cfg.max_priority) + "]");
  return std::nullopt;
}

admission_core::admission_core(const cost_model& costs, admission_config cfg)
    : costs_(costs), cfg_(cfg), next_id_(cfg.first_id) {}

msg::rejected admission_core::reject(const msg::generate_request& r, std::string code, std::string field,
                                     std::string rule, std::int64_t now_us) {
  auto out = make_rejected(r, std::move(code), std::move(field), std::move(rule));
  out.at_us = now_us;
  ++rejected_;
  return out;
}

admission_output admission_core::on_request(const msg::generate_request& req, std::int64_t now_us) {
  if (auto e = validate_request(req, costs_, cfg_)) {
    e->at_us = now_us;
    ++rejected_;
    return *e;
  }
  if (req.resend && !req.client_tag.empty())
    if (auto it = open_by_tag_.find(req.client_tag); it != open_by_tag_.end()) return it->second;
  if (auto why = unserved(req); !why.empty())
    return reject(req, "invalid", req.label >= 0 ? "label" : "model", why, now_us);
  const model_profile& p = *costs_.find(req.model);
  const std::int64_t tokens = cost_model::tokens(p, req.width, req.height, req.frames);
  const double single_us = cost_model::request_us(p, tokens, req.steps, 1);

  if (outstanding_.size() >= cfg_.max_outstanding) {
    // The backlog's single-GPU work spread over the cluster: when a place is likely free.
    const double backlog_ms =
        outstanding_work_us_ / 1000.0 / std::max(1, cfg_.gpus) / std::max<double>(1.0, outstanding_.size());
    auto out = reject(req, "overloaded", "",
                      "queue full (" + std::to_string(cfg_.max_outstanding) + " requests outstanding)", now_us);
    out.retry_after_ms = std::clamp(backlog_ms, cfg_.min_retry_after_ms, cfg_.max_retry_after_ms);
    return out;
  }

  msg::admitted a;
  a.request = req;
  a.arrival_us = now_us;
  a.tokens = tokens;
  a.est_single_gpu_us = single_us;
  const double slo_us = req.slo_ms > 0.0         ? req.slo_ms * 1000.0
                        : req.slo_multiple > 0.0 ? req.slo_multiple * single_us
                                                 : 0.0;
  if (slo_us > 0.0) {
    a.has_deadline = true;
    a.deadline_us = now_us + static_cast<std::int64_t>(std::llround(slo_us));
  }
  if (cfg_.reject_infeasible && a.has_deadline) {
    double best = std::numeric_limits<double>::infinity();
    for (auto d : cost_model::degrees(p)) best = std::min(best, cost_model::request_us(p, tokens, req.steps, d));
    if (best > slo_us)
      return reject(
          req, "infeasible", req.slo_ms > 0.0 ? "slo_ms" : "slo_multiple",
          "the fastest degree needs " + std::to_string(std::llround(best / 1000.0)) + " ms, more than the SLO", now_us);
  }
  a.request_id = next_id_++;
  a.request.request_id = a.request_id;
  outstanding_.emplace(a.request_id, single_us);
  outstanding_work_us_ += single_us;
  if (!req.client_tag.empty()) open_by_tag_[req.client_tag] = a;
  ++admitted_;
  return a;
}

void admission_core::on_worker_hello(const msg::worker_hello& hello) { served_[hello.worker] = hello.models; }

std::string admission_core::unserved(const msg::generate_request& r) const {
  if (served_.empty()) return {};
  std::set<std::string> names;
  for (const auto& [w, models] : served_) {
    if (models.empty()) return {};  // seeded weights: every profiled model
    for (const auto& m : models) {
      if (m.name != r.model) {
        names.insert(m.name);
        continue;
      }
      if (r.label >= static_cast<std::int32_t>(m.classes.size()))
        return "class " + std::to_string(r.label) + " of '" + m.name + "', which has " +
               std::to_string(m.classes.size());
      return {};
    }
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return "no worker holds model '" + r.model.substr(0, 64) + "' (served: " + list + ")";
}

void admission_core::resume(const std::vector<msg::admitted>& open, std::uint64_t next_id) {
  next_id_ = std::max(next_id_, next_id);
  for (const auto& a : open) {
    if (outstanding_.emplace(a.request_id, a.est_single_gpu_us).second) outstanding_work_us_ += a.est_single_gpu_us;
    if (!a.request.client_tag.empty()) open_by_tag_[a.request.client_tag] = a;
  }
}

void admission_core::on_request_done(const msg::request_done& done) {
  auto it = outstanding_.find(done.request_id);
  if (it == outstanding_.end()) return;
  if (auto t = open_by_tag_.find(done.client_tag); t != open_by_tag_.end() && t->second.request_id == done.request_id)
    open_by_tag_.erase(t);
  outstanding_work_us_ = std::max(0.0, outstanding_work_us_ - it->second);
  outstanding_.erase(it);
}

}  // namespace gfdit
