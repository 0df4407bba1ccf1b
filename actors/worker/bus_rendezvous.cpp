#include "actors/worker/bus_rendezvous.hpp"

namespace gfdit {

result<std::vector<std::string>> bus_rendezvous::all_gather(std::string_view mine, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (cancelled_) return make_error(errc::cancelled, "bus rendezvous of world '" + world_ + "': cancelled");
  const std::uint32_t round = next_round_++;
  msg::world_join j;
  j.world = world_;
  j.rank = rank_;
  j.size = size_;
  j.round = round;
  j.timeout_ms = timeout.count();
  j.blob.assign(mine.begin(), mine.end());
  outbox_ = std::move(j);
  waiting_ = true;
  waiting_round_ = round;
  answer_.reset();
  if (on_join_) on_join_();  // non-blocking (a message to the actor), fine under the lock
  const bool answered = cv_.wait_for(lock, timeout + answer_grace, [&] { return answer_.has_value() || cancelled_; });
  waiting_ = false;
  outbox_.reset();  // never sent late: a join left here would belong to a round we gave up
  if (cancelled_) return make_error(errc::cancelled, "bus rendezvous of world '" + world_ + "': cancelled");
  if (!answered)
    return make_error(errc::timeout, "bus rendezvous of world '" + world_ + "': no answer from the hub to round " +
                                         std::to_string(round) + " within " +
                                         std::to_string((timeout + answer_grace).count()) + " ms");
  auto a = std::move(*answer_);
  answer_.reset();
  return a;
}

std::optional<msg::world_join> bus_rendezvous::take_join() {
  std::lock_guard lock(mu_);
  std::optional<msg::world_join> j;
  j.swap(outbox_);
  return j;
}

void bus_rendezvous::deliver(const msg::world_blobs& m) {
  std::lock_guard lock(mu_);
  if (!waiting_ || answer_ || m.world != world_ || m.round != waiting_round_) return;
  if (!m.error.empty()) {
    answer_ = result<std::vector<std::string>>(
        make_error(m.timed_out ? errc::timeout : errc::invalid_argument, "world hub: " + m.error));
  } else if (m.blobs.size() != static_cast<std::size_t>(size_)) {
    answer_ = result<std::vector<std::string>>(
        make_error(errc::state, "world hub: round " + std::to_string(m.round) + " answered with " +
                                    std::to_string(m.blobs.size()) + " blobs for " + std::to_string(size_) + " ranks"));
  } else {
    std::vector<std::string> all;
    all.reserve(m.blobs.size());
    for (const auto& b : m.blobs) all.emplace_back(b.begin(), b.end());
    answer_ = result<std::vector<std::string>>(std::move(all));
  }
  cv_.notify_all();
}

void bus_rendezvous::fail(const error& e) {
  std::lock_guard lock(mu_);
  if (!waiting_ || answer_) return;
  answer_ = result<std::vector<std::string>>(
      make_error(e.code, "bus rendezvous of world '" + world_ + "': join not delivered: " + e.what));
  cv_.notify_all();
}

void bus_rendezvous::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

}  // namespace gfdit
