#include <gtest/gtest.h>

#include <functional>

#include "actors/admission/admission_core.hpp"
#include "actors/scheduler/scheduler_core.hpp"

namespace gfdit {
namespace {

// A policy whose decisions the test writes, so each test pins exactly one behaviour of the core.
class scripted final : public policy {
 public:
  std::function<void(const policy_view&, std::vector<decision>&)> fn;
  std::string_view name() const override { return "scripted"; }
  void decide(const policy_view& v, std::vector<decision>& out) override {
    if (fn) fn(v, out);
  }
};

template <class T>
std::vector<T> only(const std::vector<scheduler_output>& out) {
  std::vector<T> xs;
  for (const auto& o : out)
    if (auto* x = std::get_if<T>(&o)) xs.push_back(*x);
  return xs;
}

msg::admitted admitted(std::uint64_t id, std::int32_t steps, std::int64_t at = 0) {
  admission_core a(cost_model::stock(), admission_config{1 << 20, false, 1, id});
  msg::generate_request r;
  r.model = "image-dit-20b-standin";
  r.width = r.height = 1024;
  r.steps = steps;
  r.slo_multiple = 2;
  r.class_name = "img";
  r.client_tag = "tag" + std::to_string(id);
  return std::get<msg::admitted>(a.on_request(r, at));
}

msg::task_done done_of(const msg::task_assign& t, std::int64_t start, std::int64_t end, std::int64_t reshard = 0) {
  msg::task_done d = msg::report_of(t, t.members.front(), start);
  d.end_us = end;
  d.reshard_us = reshard;
  d.compute_us = end - start - reshard;
  return d;
}

struct fixture {
  scripted* pol;
  scheduler_core core;
  explicit fixture(int workers, std::int32_t chunk = 4) : fixture(std::make_unique<scripted>(), workers, chunk) {}
  fixture(std::unique_ptr<scripted> p, int workers, std::int32_t chunk)
      : pol(p.get()), core(cost_model::stock(), std::move(p), scheduler_config{chunk, 2}) {
    for (int i = 0; i < workers; ++i) (void)core.on_worker_hello(msg::worker_hello{i, "", "", "sim"}, 0);
  }
  // Every waiting request goes on a group made of `members`, formed once.
  void run_on(std::vector<std::int32_t> members) {
    pol->fn = [members](const policy_view& v, std::vector<decision>& out) {
      const auto gid = group_id_of(members);
      if (!v.groups.count(gid)) out.push_back(decision::form(members));
      for (auto id : v.waiting) {
        auto g = v.groups.find(gid);
        if (g == v.groups.end() || !g->second.busy) out.push_back(decision::assign(id, gid));
        break;
      }
    };
  }
};

TEST(scheduler, walks_the_task_dag_prepare_chunks_decode_and_reports_the_breakdown) {
  fixture f(2, 4);
  f.run_on({0, 1});
  auto out = f.core.on_admitted(admitted(1, 10, 100), 100);
  ASSERT_EQ(only<msg::form_group>(out).size(), 1u);
  auto t = only<msg::task_assign>(out);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].stage, "prepare");
  EXPECT_EQ(t[0].input.layout, "none");
  EXPECT_EQ(t[0].output_layout, "replicated");
  EXPECT_EQ(t[0].members, (std::vector<std::int32_t>{0, 1}));
  std::vector<std::pair<int, int>> chunks;
  std::int64_t now = 1000;
  std::vector<msg::request_done> finished;
  for (int guard = 0; guard < 10 && finished.empty(); ++guard) {
    auto o = f.core.on_task_done(done_of(t[0], now, now + 1000), now + 1000);
    now += 2000;
    finished = only<msg::request_done>(o);
    EXPECT_TRUE(only<msg::reshard>(o).empty());  // same group throughout: no move
    t = only<msg::task_assign>(o);
    if (!t.empty() && t[0].stage == "denoise") {
      chunks.emplace_back(t[0].step_begin, t[0].step_end);
      EXPECT_EQ(t[0].output_layout, "token_sharded");
    }
    if (!t.empty() && t[0].stage == "decode") {
      EXPECT_EQ(t[0].input.steps_done, 10);
    }
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<int, int>>{{0, 4}, {4, 8}, {8, 10}}));
  ASSERT_EQ(finished.size(), 1u);
  const auto& d = finished[0];
  EXPECT_EQ(d.status, "done");
  EXPECT_EQ(d.client_tag, "tag1");
  EXPECT_EQ(d.class_name, "img");
  EXPECT_EQ(d.run_us, 5 * 1000);      // five tasks of 1 ms
  EXPECT_EQ(d.gpu_us, 5 * 1000 * 2);  // ... each holding a group of 2
  EXPECT_EQ(d.latency_us, d.finish_us - 100);
  EXPECT_EQ(d.queue_us, d.latency_us - d.run_us - d.reshard_us);
  EXPECT_TRUE(d.slo_met);
  EXPECT_EQ(d.result_ref, "worker:0/request:1");
  EXPECT_TRUE(f.core.requests().empty());
  EXPECT_EQ(f.core.check_invariants(), "");
}

TEST(scheduler, issues_a_reshard_whenever_a_request_changes_group) {
  fixture f(4, 2);
  f.run_on({0});
  auto t = only<msg::task_assign>(f.core.on_admitted(admitted(1, 4), 0));
  auto o = f.core.on_task_done(done_of(t[0], 0, 10), 10);  // prepare done on [0]
  t = only<msg::task_assign>(o);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(only<msg::reshard>(o).empty());
  // Move it to [2, 3] for the next chunk.
  f.pol->fn = [](const policy_view& v, std::vector<decision>& out) {
    const std::vector<std::int32_t> m{2, 3};
    out.push_back(decision::form(m));
    for (auto id : v.waiting) out.push_back(decision::assign(id, group_id_of(m)));
  };
  o = f.core.on_task_done(done_of(t[0], 10, 20), 20);
  auto rs = only<msg::reshard>(o);
  t = only<msg::task_assign>(o);
  ASSERT_EQ(rs.size(), 1u);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(rs[0].task_id, t[0].task_id);
  EXPECT_EQ(rs[0].from.holders, (std::vector<std::int32_t>{0}));
  EXPECT_EQ(rs[0].from.layout, "owner_only");
  EXPECT_EQ(rs[0].to_members, (std::vector<std::int32_t>{2, 3}));
  EXPECT_EQ(rs[0].to_layout, "token_sharded");
  EXPECT_GT(rs[0].bytes, 0);
  EXPECT_EQ(t[0].input.holders, (std::vector<std::int32_t>{0}));
  EXPECT_EQ(f.core.stats().reshards, 1u);
  EXPECT_EQ(f.core.requests().at(1).regroupings, 1);
}

TEST(scheduler, preempts_only_at_the_chunk_boundary) {
  fixture f(1, 2);
  f.run_on({0});
  auto t = only<msg::task_assign>(f.core.on_admitted(admitted(1, 6), 0));
  t = only<msg::task_assign>(f.core.on_task_done(done_of(t[0], 0, 10), 10));  // chunk [0,2) runs
  ASSERT_EQ(t.size(), 1u);
  // A preemption asked for mid-chunk emits nothing and leaves the task running.
  f.pol->fn = [](const policy_view& v, std::vector<decision>& out) { out.push_back(decision::preempt(1, "test")); };
  auto o = f.core.on_tick(15);
  EXPECT_TRUE(only<msg::preempt>(o).empty());
  EXPECT_TRUE(f.core.requests().at(1).running);
  // At the boundary it takes effect: Preempt, and the request waits with its state kept.
  f.pol->fn = nullptr;
  o = f.core.on_task_done(done_of(t[0], 10, 20), 20);
  auto p = only<msg::preempt>(o);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].at_step, 2);
  EXPECT_TRUE(only<msg::task_assign>(o).empty());
  EXPECT_FALSE(f.core.requests().at(1).running);
  EXPECT_EQ(f.core.requests().at(1).holders, (std::vector<std::int32_t>{0}));
}

TEST(scheduler, cancel_ends_a_waiting_request_at_once_and_a_running_one_without_freeing_its_group_early) {
  fixture f(1, 2);
  f.run_on({0});
  auto t = only<msg::task_assign>(f.core.on_admitted(admitted(1, 4), 0));
  auto o = f.core.on_admitted(admitted(2, 4), 1);  // waits: the only group is busy
  EXPECT_TRUE(only<msg::task_assign>(o).empty());
  auto d2 = only<msg::request_done>(f.core.on_cancel(msg::cancel{2, "client"}, 2));
  ASSERT_EQ(d2.size(), 1u);
  EXPECT_EQ(d2[0].status, "cancelled");
  auto d1 = only<msg::request_done>(f.core.on_cancel(msg::cancel{1, "client"}, 3));
  ASSERT_EQ(d1.size(), 1u);
  EXPECT_EQ(d1[0].status, "cancelled");
  EXPECT_TRUE(f.core.groups().begin()->second.busy);  // the task still runs on the worker
  EXPECT_TRUE(f.core.on_cancel(msg::cancel{1, "again"}, 4).empty());
  auto o3 = f.core.on_admitted(admitted(3, 4), 5);
  EXPECT_TRUE(only<msg::task_assign>(o3).empty());
  // The cancelled task's report frees the group; it is not a second terminal message.
  auto o4 = f.core.on_task_done(done_of(t[0], 0, 10), 10);
  EXPECT_TRUE(only<msg::request_done>(o4).empty());
  auto t3 = only<msg::task_assign>(o4);
  ASSERT_EQ(t3.size(), 1u);
  EXPECT_EQ(t3[0].request_id, 3u);
  EXPECT_EQ(f.core.stats().stale_reports, 1u);
}

TEST(scheduler, a_worker_death_reruns_the_request_from_its_last_completed_chunk) {
  fixture f(3, 2);
  f.run_on({0, 1});
  auto t = only<msg::task_assign>(f.core.on_admitted(admitted(1, 6), 0));
  t = only<msg::task_assign>(f.core.on_task_done(done_of(t[0], 0, 10), 10));   // prepare
  t = only<msg::task_assign>(f.core.on_task_done(done_of(t[0], 10, 20), 20));  // [0,2)
  ASSERT_EQ(t[0].step_begin, 2);                                               // [2,4) running
  f.run_on({2});
  auto o = f.core.on_worker_down(msg::worker_down{1, 20, "timeout"}, 25);
  ASSERT_EQ(only<msg::dissolve_group>(o).size(), 1u);
  auto rs = only<msg::reshard>(o);
  auto t2 = only<msg::task_assign>(o);
  ASSERT_EQ(t2.size(), 1u);
  EXPECT_EQ(t2[0].stage, "denoise");
  EXPECT_EQ(t2[0].step_begin, 2);  // the chunk that was lost, not the whole request
  EXPECT_EQ(t2[0].members, (std::vector<std::int32_t>{2}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].from.layout, "checkpoint");  // the sharded state lost a shard
  // The dead group's late report is ignored.
  auto late = f.core.on_task_done(done_of(t[0], 20, 30), 30);
  EXPECT_TRUE(only<msg::task_assign>(late).empty());
  EXPECT_EQ(f.core.stats().stale_reports, 1u);
  EXPECT_EQ(f.core.check_invariants(), "");
}

TEST(scheduler, failed_tasks_retry_then_fail_the_request_and_losing_every_worker_fails_all) {
  fixture f(2, 2);
  f.run_on({0});
  auto t = only<msg::task_assign>(f.core.on_admitted(admitted(1, 2), 0));
  std::vector<msg::request_done> fin;
  for (int i = 0; i < 5 && fin.empty(); ++i) {
    auto d = done_of(t[0], 0, 1);
    d.ok = false;
    d.error = "boom";
    auto o = f.core.on_task_done(d, 1);
    fin = only<msg::request_done>(o);
    t = only<msg::task_assign>(o);
  }
  ASSERT_EQ(fin.size(), 1u);
  EXPECT_EQ(fin[0].status, "failed");
  EXPECT_EQ(fin[0].retries, 3);  // max_retries = 2
  (void)f.core.on_admitted(admitted(2, 2), 2);
  (void)f.core.on_worker_down(msg::worker_down{0, 0, ""}, 3);
  auto o = f.core.on_worker_down(msg::worker_down{1, 0, ""}, 4);
  auto d = only<msg::request_done>(o);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].status, "failed");
  EXPECT_TRUE(f.core.requests().empty());
}

TEST(scheduler, skips_and_counts_decisions_it_cannot_apply) {
  fixture f(3, 2);
  f.pol->fn = [](const policy_view& v, std::vector<decision>& out) {
    out.push_back(decision::form({0, 1}));
    out.push_back(decision::form({1, 2}));                                              // 1 is taken
    out.push_back(decision::form({5}));                                                 // unknown worker
    out.push_back(decision::form({2, 2}));                                              // repeated
    out.push_back(decision::assign(99, group_id_of(std::vector<std::int32_t>{0, 1})));  // no request
    out.push_back(decision::dissolve(12345));                                           // no group
    for (auto id : v.waiting) {
      out.push_back(decision::assign(id, group_id_of(std::vector<std::int32_t>{0, 1})));
      out.push_back(decision::assign(id, group_id_of(std::vector<std::int32_t>{0, 1})));  // busy now
      out.push_back(decision::reject(id, "running"));  // cannot reject a running request
    }
  };
  auto o = f.core.on_admitted(admitted(1, 2), 0);
  EXPECT_EQ(only<msg::task_assign>(o).size(), 1u);
  EXPECT_EQ(only<msg::form_group>(o).size(), 1u);
  EXPECT_EQ(f.core.stats().decisions_invalid, 7u);
  EXPECT_EQ(f.core.check_invariants(), "");
}

TEST(scheduler, a_policy_reject_is_the_requests_one_terminal_message) {
  fixture f(1, 2);
  f.pol->fn = [](const policy_view& v, std::vector<decision>& out) {
    for (auto id : v.waiting) out.push_back(decision::reject(id, "not today"));
  };
  auto d = only<msg::request_done>(f.core.on_admitted(admitted(1, 2), 0));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].status, "rejected");
  EXPECT_EQ(d[0].error, "not today");
  EXPECT_FALSE(d[0].slo_met);
}

TEST(scheduler, a_request_runs_only_on_workers_that_serve_its_model) {
  // Worker 0 serves only a checkpoint named "other"; worker 1 every model (seeded weights).
  scheduler_core core(cost_model::stock(), make_policy("edf-best-fit").value(), scheduler_config{4, 2});
  msg::worker_hello h0{0, "", "", "cpu", {}};
  h0.models.push_back(msg::served_model{"other", 28, 28, {}, 25, 4.0});
  (void)core.on_worker_hello(h0, 0);
  (void)core.on_worker_hello(msg::worker_hello{1, "", "", "cpu", {}}, 0);
  EXPECT_FALSE(core.workers().at(0).serves("image-dit-20b-standin"));
  EXPECT_TRUE(core.workers().at(1).serves("image-dit-20b-standin"));
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto t = only<msg::task_assign>(core.on_admitted(admitted(id, 4), 0));
    for (const auto& a : t) EXPECT_EQ(a.members, std::vector<std::int32_t>{1}) << "request " << id;
  }
  // A policy that insists on worker 0 is refused.
  fixture f(0, 2);
  (void)f.core.on_worker_hello(h0, 0);
  f.run_on({0});
  EXPECT_TRUE(only<msg::task_assign>(f.core.on_admitted(admitted(1, 2), 0)).empty());
  EXPECT_GE(f.core.stats().decisions_invalid, 1u);
}

TEST(scheduler, a_cancel_by_client_tag_ends_the_request_even_one_not_yet_admitted) {
  fixture f(1, 2);
  f.run_on({0});
  auto a = admitted(1, 8);
  (void)f.core.on_admitted(a, 0);
  auto d = only<msg::request_done>(f.core.on_cancel(msg::cancel{0, "client left", "tag1"}, 10));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].request_id, 1u);
  EXPECT_EQ(d[0].status, "cancelled");
  EXPECT_EQ(d[0].error, "client left");
  // The cancel overtook its request (it went gateway -> scheduler, the request through admission).
  EXPECT_TRUE(f.core.on_cancel(msg::cancel{0, "gone early", "tag2"}, 20).empty());
  auto e = only<msg::request_done>(f.core.on_admitted(admitted(2, 8), 30));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].status, "cancelled");
  EXPECT_EQ(e[0].error, "gone early");
  EXPECT_EQ(f.core.check_invariants(), "");
}

TEST(scheduler, a_request_that_asks_for_progress_gets_one_per_denoise_chunk) {
  fixture f(2, 4);
  f.run_on({0, 1});
  auto a = admitted(1, 10);
  a.request.reply_to = "gateway";
  a.request.progress = true;
  auto t = only<msg::task_assign>(f.core.on_admitted(a, 0));
  std::vector<progress_note> notes;
  for (int guard = 0; guard < 10 && !t.empty(); ++guard) {
    auto out = f.core.on_task_done(done_of(t[0], 0, 10), 10);
    for (auto& n : only<progress_note>(out)) notes.push_back(n);
    t = only<msg::task_assign>(out);
  }
  ASSERT_EQ(notes.size(), 3u);  // chunks of 4, 4, 2
  EXPECT_EQ(notes[0].to, "gateway");
  EXPECT_EQ(notes[0].progress.step, 4);
  EXPECT_EQ(notes[2].progress.step, 10);
  EXPECT_EQ(notes[2].progress.total, 10);
  EXPECT_EQ(notes[1].progress.group_size, 2);
  EXPECT_EQ(notes[1].progress.client_tag, "tag1");
}

}  // namespace
}  // namespace gfdit
