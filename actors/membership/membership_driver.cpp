#include "actors/membership/membership_driver.hpp"

#include "actors/serving/model_time.hpp"
#include "actors/serving/serving_names.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

void publish(std::vector<outgoing>& out, std::vector<membership_output> views) {
  for (auto& v : views)
    std::visit([&](auto& m) { out.push_back(make_outgoing(route::topic, names::membership_topic, std::move(m))); }, v);
}

void answer(std::vector<outgoing>& out, std::vector<world_hub_reply> replies) {
  for (auto& r : replies) out.push_back(make_outgoing(route::direct, std::move(r.to), std::move(r.blobs)));
}

}  // namespace

std::vector<std::string> membership_driver::topics() const { return {names::workers_topic}; }

outgoing membership_driver::tick(std::uint64_t n) const {
  return make_outgoing(route::direct, cfg_.self, msg::heartbeat{cfg_.self, n});
}

std::vector<outgoing> membership_driver::feed(const inbound& in) {
  std::vector<outgoing> out;
  const auto now = model_now_us(in.wall_ns, cfg_.speedup);
  // The hub's timeouts are the joiners' own (wall time), so it reads the stamp unscaled.
  const auto wall_us = in.wall_ns / 1000;
  auto run = [&]<message T>(std::vector<membership_output> (membership_core::*fn)(const T&, std::int64_t)) {
    if (const auto* m = in.get<T>()) publish(out, (core_.*fn)(*m, now));
  };
  const bool direct = in.kind == route::direct;
  if (in.kind == route::topic && in.destination == names::workers_topic) {
    if (in.is<msg::worker_hello>())
      run(&membership_core::on_hello);
    else if (in.is<msg::worker_heartbeat>())
      run(&membership_core::on_heartbeat);
  } else if (direct && in.is<msg::form_group>()) {
    run(&membership_core::on_form_group);
  } else if (direct && in.is<msg::dissolve_group>()) {
    run(&membership_core::on_dissolve_group);
  } else if (direct && in.is<msg::world_join>()) {
    if (const auto* m = in.get<msg::world_join>()) answer(out, hub_.on_join(*m, std::string(in.sender), wall_us));
  } else if (direct && in.is<msg::heartbeat>() && in.sender == cfg_.self) {
    publish(out, core_.on_tick(now));
    answer(out, hub_.on_tick(wall_us));
  }
  return out;
}

}  // namespace gfdit
