#include "actors/worker/world_joiner.hpp"

namespace gfdit {

world_joiner::world_joiner(std::string hub, std::string world, int rank, int size, job fn, std::function<void()> wake)
    : hub_(std::move(hub)), rv_(std::move(world), rank, size, wake) {
  thread_ = std::thread([this, fn = std::move(fn), wake = std::move(wake)] {
    result_ = fn(rv_);
    done_.store(true, std::memory_order_release);
    wake();
  });
}

world_joiner::~world_joiner() {
  rv_.cancel();
  if (thread_.joinable()) thread_.join();
}

std::optional<result<void>> world_joiner::poll(context& ctx) {
  if (joined_) return result_;
  if (auto j = rv_.take_join())
    if (auto r = ctx.send(hub_, *j); !r) rv_.fail(r.err());
  if (!done_.load(std::memory_order_acquire)) return std::nullopt;
  thread_.join();
  joined_ = true;
  return result_;
}

void world_joiner::on_delivery_failure(const error& e, std::uint32_t type_id) {
  if (type_id == type_id_of<msg::world_join>) rv_.fail(e);
}

}  // namespace gfdit
