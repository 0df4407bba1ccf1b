// A restarted scheduler: it knows no worker until their heartbeats show them (it asks each for
// its hello, once a second at most), and numbers its tasks from `first_task_id`, above any task
// of its previous life.
#include <gtest/gtest.h>

#include "actors/admission/admission_core.hpp"
#include "actors/scheduler/scheduler_driver.hpp"
#include "actors/serving/serving_names.hpp"
#include "messages/codec.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

template <message T>
envelope env_of(route kind, const std::string& sender, const std::string& destination, const T& m, std::int64_t at_us) {
  envelope e = to_envelope(make_outgoing(kind, destination, m), sender);
  e.time.wall_ns = at_us * 1000;
  return e;
}

template <message T>
std::vector<T> sent(const std::vector<outgoing>& out, const std::string& to) {
  std::vector<T> xs;
  for (const auto& o : out)
    if (const T* m = o.message.get<T>(); m && o.destination == to) xs.push_back(*m);
  return xs;
}

TEST(scheduler_restart, learns_workers_from_heartbeats_and_numbers_tasks_above_its_old_life) {
  auto costs = std::make_shared<const cost_model>(cost_model::stock());
  scheduler_driver_config cfg;
  cfg.policy = "fcfs-elastic";
  cfg.core.first_task_id = 5'000'000;
  auto d = scheduler_driver::create(costs, cfg);
  ASSERT_TRUE(d);
  auto& s = **d;

  // A request from the journal, before any worker is known: it waits.
  admission_core a(*costs);
  msg::generate_request r;
  r.model = "image-dit-20b-standin";
  r.width = r.height = 512;
  r.steps = 4;
  const auto admitted = std::get<msg::admitted>(a.on_request(r, 0));
  EXPECT_TRUE(s.feed(env_of(route::direct, "scheduler", "scheduler", admitted, 1'000)).empty());

  // Worker 0 beats: asked for its hello, and not again within the second.
  const msg::worker_heartbeat beat{0, 40};
  auto asked = sent<msg::hello_query>(s.feed(env_of(route::topic, "worker-0", names::workers_topic, beat, 2'000)),
                                      names::worker(0));
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].worker, 0);
  EXPECT_TRUE(s.feed(env_of(route::topic, "worker-0", names::workers_topic, beat, 500'000)).empty());
  EXPECT_EQ(sent<msg::hello_query>(s.feed(env_of(route::topic, "worker-0", names::workers_topic, beat, 1'100'000)),
                                   names::worker(0))
                .size(),
            1u);

  // Its answer, directed: the worker joins and the waiting request runs, with a new-life task id.
  const msg::worker_hello hello{0, "", "", "sim", {}};
  auto out = s.feed(env_of(route::direct, "worker-0", "scheduler", hello, 1'200'000));
  auto tasks = sent<msg::task_assign>(out, names::worker(0));
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].request_id, admitted.request_id);
  EXPECT_EQ(tasks[0].task_id, 5'000'000u);
  // A second answer is no news: the running task is not failed as if the worker had restarted.
  EXPECT_TRUE(s.feed(env_of(route::direct, "worker-0", "scheduler", hello, 1'300'000)).empty());
  EXPECT_EQ(s.core().stats().tasks_failed, 0u);
  // A known worker's beats ask nothing.
  EXPECT_TRUE(s.feed(env_of(route::topic, "worker-0", names::workers_topic, beat, 9'000'000)).empty());
}

}  // namespace
}  // namespace gfdit
