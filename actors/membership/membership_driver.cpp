#include "actors/membership/membership_driver.hpp"

#include "actors/serving/model_time.hpp"
#include "actors/serving/serving_names.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

void publish(std::vector<outgoing>& out, const std::vector<membership_output>& views) {
  for (const auto& v : views)
    std::visit([&](const auto& m) { out.push_back(make_outgoing(route::topic, names::membership_topic, m)); }, v);
}

void answer(std::vector<outgoing>& out, const std::vector<world_hub_reply>& replies) {
  for (const auto& r : replies) out.push_back(make_outgoing(route::direct, r.to, r.blobs));
}

}  // namespace

std::vector<std::string> membership_driver::topics() const { return {names::workers_topic}; }

outgoing membership_driver::tick(std::uint64_t n) const {
  return make_outgoing(route::direct, cfg_.self, msg::heartbeat{cfg_.self, n});
}

std::vector<outgoing> membership_driver::feed(const envelope& env) {
  std::vector<outgoing> out;
  const auto now = model_now_us(env, cfg_.speedup);
  // The hub's timeouts are the joiners' own (wall time), so it reads the stamp unscaled.
  const auto wall_us = env.time.wall_ns / 1000;
  auto run = [&]<message T>(std::vector<membership_output> (membership_core::*fn)(const T&, std::int64_t)) {
    if (auto m = decode<T>(env.payload)) publish(out, (core_.*fn)(*m, now));
  };
  const bool direct = env.kind == route::direct;
  if (env.kind == route::topic && env.destination == names::workers_topic) {
    if (env.is<msg::worker_hello>())
      run(&membership_core::on_hello);
    else if (env.is<msg::worker_heartbeat>())
      run(&membership_core::on_heartbeat);
  } else if (direct && env.is<msg::form_group>()) {
    run(&membership_core::on_form_group);
  } else if (direct && env.is<msg::dissolve_group>()) {
    run(&membership_core::on_dissolve_group);
  } else if (direct && env.is<msg::world_join>()) {
    if (auto m = decode<msg::world_join>(env.payload)) answer(out, hub_.on_join(*m, env.sender, wall_us));
  } else if (direct && env.is<msg::heartbeat>() && env.sender == cfg_.self) {
    publish(out, core_.on_tick(now));
    answer(out, hub_.on_tick(wall_us));
  }
  return out;
}

}  // namespace gfdit
