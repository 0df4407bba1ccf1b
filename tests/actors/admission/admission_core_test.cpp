#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "actors/admission/admission_core.hpp"
#include "actors/admission/admission_driver.hpp"
#include "actors/serving/serving_names.hpp"
#include "messages/codec.hpp"

namespace gfdit {
namespace {

msg::generate_request good() {
  msg::generate_request r;
  r.model = "image-dit-20b-standin";
  r.width = 1024;
  r.height = 1024;
  r.frames = 1;
  r.steps = 50;
  r.guidance = 4.0;
  r.slo_multiple = 2.0;
  r.client_tag = "c1";
  return r;
}

// By value: the output it reads is usually a temporary.
msg::rejected as_rejected(const admission_output& o) {
  EXPECT_TRUE(std::holds_alternative<msg::rejected>(o));
  return std::holds_alternative<msg::rejected>(o) ? std::get<msg::rejected>(o) : msg::rejected{};
}

TEST(admission, admits_a_valid_request_with_sequential_ids_and_a_deadline_from_the_slo) {
  admission_core a(cost_model::stock());
  auto o1 = a.on_request(good(), 1'000'000);
  auto o2 = a.on_request(good(), 2'000'000);
  ASSERT_TRUE(std::holds_alternative<msg::admitted>(o1));
  const auto& m = std::get<msg::admitted>(o1);
  EXPECT_EQ(m.request_id, 1u);
  EXPECT_EQ(m.request.request_id, 1u);
  EXPECT_EQ(std::get<msg::admitted>(o2).request_id, 2u);
  EXPECT_EQ(m.arrival_us, 1'000'000);
  EXPECT_EQ(m.tokens, 64 * 64);
  EXPECT_TRUE(m.has_deadline);
  EXPECT_EQ(m.deadline_us, 1'000'000 + std::llround(2.0 * m.est_single_gpu_us));
  EXPECT_EQ(a.outstanding(), 2u);
  // An absolute SLO, and none at all.
  auto r = good();
  r.slo_multiple = 0;
  r.slo_ms = 600'000;  // ten minutes: feasible (a tighter one is rejected, see below)
  EXPECT_EQ(std::get<msg::admitted>(a.on_request(r, 0)).deadline_us, 600'000'000);
  r.slo_ms = 0;
  EXPECT_FALSE(std::get<msg::admitted>(a.on_request(r, 0)).has_deadline);
}

TEST(admission, every_bad_field_is_rejected_naming_the_field_and_the_rule) {
  admission_core a(cost_model::stock());
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  constexpr double inf = std::numeric_limits<double>::infinity();
  struct bad_case {
    const char* field;
    void (*mutate)(msg::generate_request&);
  };
  const bad_case cases[] = {
      {"model", [](auto& r) { r.model = ""; }},
      {"model", [](auto& r) { r.model = "no-such-model"; }},
      {"width", [](auto& r) { r.width = 0; }},
      {"width", [](auto& r) { r.width = -512; }},
      {"width", [](auto& r) { r.width = 1000; }},  // not a multiple of 16
      {"width", [](auto& r) { r.width = 1 << 30; }},
      {"height", [](auto& r) { r.height = 4096; }},
      {"frames", [](auto& r) { r.frames = 5; }},  // an image model
      {"steps", [](auto& r) { r.steps = 0; }},
      {"steps", [](auto& r) { r.steps = 100000; }},
      {"guidance", [](auto& r) { r.guidance = nan; }},
      {"guidance", [](auto& r) { r.guidance = -1; }},
      {"guidance", [](auto& r) { r.guidance = inf; }},
      {"slo_ms", [](auto& r) { r.slo_ms = nan; }},
      {"slo_ms", [](auto& r) { r.slo_ms = -5; }},
      {"slo_multiple", [](auto& r) { r.slo_multiple = inf; }},
      {"slo_multiple", [](auto& r) { r.slo_multiple = 0.5; }},
      {"slo_multiple", [](auto& r) { r.slo_ms = 100; }},  // both given
      {"priority", [](auto& r) { r.priority = 1 << 20; }},
      {"client_tag", [](auto& r) { r.client_tag = std::string(10000, 'x'); }},
      {"class_name", [](auto& r) { r.class_name = std::string(10000, 'x'); }},
      {"request_id", [](auto& r) { r.request_id = 42; }},
  };
  for (const auto& c : cases) {
    auto r = good();
    c.mutate(r);
    const auto& rej = as_rejected(a.on_request(r, 5));
    EXPECT_EQ(rej.code, "invalid") << c.field;
    EXPECT_EQ(rej.field, c.field) << rej.rule;
    EXPECT_FALSE(rej.rule.empty()) << c.field;
    EXPECT_EQ(rej.at_us, 5);
  }
  EXPECT_EQ(a.outstanding(), 0u);
  EXPECT_EQ(a.admitted_count(), 0u);
}

TEST(admission, video_models_check_the_frame_count) {
  admission_core a(cost_model::stock());
  auto r = good();
  r.model = "video-dit-5b-standin";
  r.width = 832;
  r.height = 480;
  r.frames = 48;  // must be 1 + 4k
  EXPECT_EQ(as_rejected(a.on_request(r, 0)).field, "frames");
  r.frames = 49;
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(a.on_request(r, 0)));
}

TEST(admission, a_full_queue_rejects_with_retry_after_until_a_request_finishes) {
  admission_config cfg;
  cfg.max_outstanding = 2;
  cfg.gpus = 4;
  admission_core a(cost_model::stock(), cfg);
  auto first = std::get<msg::admitted>(a.on_request(good(), 0));
  ASSERT_TRUE(std::holds_alternative<msg::admitted>(a.on_request(good(), 0)));
  const auto& rej = as_rejected(a.on_request(good(), 10));
  EXPECT_EQ(rej.code, "overloaded");
  EXPECT_GE(rej.retry_after_ms, cfg.min_retry_after_ms);
  EXPECT_LE(rej.retry_after_ms, cfg.max_retry_after_ms);
  msg::request_done d;
  d.request_id = first.request_id;
  a.on_request_done(d);
  a.on_request_done(d);  // a duplicate changes nothing
  EXPECT_EQ(a.outstanding(), 1u);
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(a.on_request(good(), 20)));
  EXPECT_TRUE(std::holds_alternative<msg::rejected>(a.on_request(good(), 20)));
}

TEST(admission, rejects_what_can_never_meet_its_slo_unless_told_not_to) {
  auto r = good();
  r.slo_multiple = 0;
  r.slo_ms = 10;  // 10 ms for a 1024^2 image: impossible at any degree
  admission_config off;
  off.reject_infeasible = false;
  admission_core lax(cost_model::stock(), off);
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(lax.on_request(r, 0)));
  admission_core strict(cost_model::stock());  // the default
  const auto& rej = as_rejected(strict.on_request(r, 0));
  EXPECT_EQ(rej.code, "infeasible");
  EXPECT_EQ(rej.field, "slo_ms");
  r.slo_ms = 60'000;
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(strict.on_request(r, 0)));
}

TEST(admission, a_request_decoded_from_hostile_bytes_is_rejected_not_crashed) {
  // A map with wrong-typed fields fails to decode; a well-typed but absurd one is rejected.
  msg::generate_request r;
  r.model = std::string(1 << 16, 'm');
  r.width = -1;
  auto bytes = encode(r);
  auto back = decode<msg::generate_request>(bytes);
  ASSERT_TRUE(back);
  admission_core a(cost_model::stock());
  EXPECT_EQ(as_rejected(a.on_request(*back, 0)).field, "model");
}

TEST(admission, once_workers_have_said_what_they_serve_a_model_none_holds_is_rejected_naming_those_served) {
  admission_core a(cost_model::stock());
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(a.on_request(good(), 0)));  // no hello yet: it waits for workers
  msg::worker_hello h{0, "", "", "cpu", {}};
  h.models.push_back(msg::served_model{"fashion-dit", 28, 28, {"a", "b"}, 25, 4.0});
  a.on_worker_hello(h);
  auto r = as_rejected(a.on_request(good(), 0));
  EXPECT_EQ(r.field, "model");
  EXPECT_NE(r.rule.find("no worker holds model"), std::string::npos) << r.rule;
  EXPECT_NE(r.rule.find("served: fashion-dit"), std::string::npos) << r.rule;
  auto f = good();
  f.model = "fashion-dit";
  f.width = f.height = 28;
  f.label = 1;
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(a.on_request(f, 0)));
  f.label = 2;  // past its two classes
  EXPECT_EQ(as_rejected(a.on_request(f, 0)).field, "label");
  f.label = -5;
  EXPECT_EQ(as_rejected(a.on_request(f, 0)).field, "label");
  // A worker with seeded weights serves every profiled model again.
  a.on_worker_hello(msg::worker_hello{1, "", "", "sim", {}});
  EXPECT_TRUE(std::holds_alternative<msg::admitted>(a.on_request(good(), 0)));
}

}  // namespace
// A gateway sends a request again when its answer never came (admission's process may have
// died with it): the repeat gets the same Admitted and takes no second place; once the request
// is done, the tag is free again.
TEST(admission, a_resend_of_an_open_request_is_answered_with_its_admitted_again) {
  admission_core a(cost_model::stock());
  auto r = good();
  r.client_tag = "gw/1";
  const auto first = std::get<msg::admitted>(a.on_request(r, 0));
  r.resend = true;
  const auto again = std::get<msg::admitted>(a.on_request(r, 5));
  EXPECT_EQ(again.request_id, first.request_id);
  EXPECT_EQ(again.arrival_us, first.arrival_us);
  EXPECT_EQ(a.outstanding(), 1u);
  EXPECT_EQ(a.admitted_count(), 1u);
  msg::request_done d;
  d.request_id = first.request_id;
  d.client_tag = "gw/1";
  a.on_request_done(d);
  const auto later = std::get<msg::admitted>(a.on_request(r, 7));
  EXPECT_NE(later.request_id, first.request_id);
  EXPECT_EQ(a.admitted_count(), 2u);
  // A restarted admission knows the open tags from its journal.
  admission_core b(cost_model::stock());
  b.resume({first}, first.request_id + 10);
  EXPECT_EQ(std::get<msg::admitted>(b.on_request(r, 8)).request_id, first.request_id);
}

// The operator's view per node: finished requests' latency as a Prometheus histogram by status,
// cumulative buckets ending in +Inf, with the sum and count.
TEST(admission, metrics_hold_a_latency_histogram_of_finished_requests_by_status) {
  admission_driver d(std::make_shared<cost_model>(cost_model::stock()), {});
  auto done = [&](const std::string& status, double seconds) {
    msg::request_done r;
    r.status = status;
    r.latency_us = static_cast<std::int64_t>(seconds * 1e6);
    d.feed(inbound(route::topic, "scheduler", serving_names::done_topic, 0, r));
  };
  done("done", 0.7);
  done("done", 3.0);
  done("done", 4000.0);
  done("failed", 1.5);
  const std::string m = d.metrics_text("admission");
  const std::string done_l = "{actor=\"admission\",status=\"done\"";
  for (const std::string& line : std::vector<std::string>{
           "# TYPE gfdit_admission_request_seconds histogram\n",
           "gfdit_admission_request_seconds_bucket" + done_l + ",le=\"0.5\"} 0\n",
           "gfdit_admission_request_seconds_bucket" + done_l + ",le=\"1\"} 1\n",
           "gfdit_admission_request_seconds_bucket" + done_l + ",le=\"5\"} 2\n",
           "gfdit_admission_request_seconds_bucket" + done_l + ",le=\"1800\"} 2\n",
           "gfdit_admission_request_seconds_bucket" + done_l + ",le=\"+Inf\"} 3\n",
           "gfdit_admission_request_seconds_sum" + done_l + "} 4003.7\n",
           "gfdit_admission_request_seconds_count" + done_l + "} 3\n",
           std::string("gfdit_admission_request_seconds_bucket{actor=\"admission\",status=\"failed\",le=\"2\"} 1\n")})
    EXPECT_NE(m.find(line), std::string::npos) << line << " not in:\n" << m;
}

}  // namespace gfdit
