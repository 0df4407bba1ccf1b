#pragma once
// coll::rendezvous over the message bus: each all_gather round is one WorldJoin to the world
// hub (actors/membership/world_hub.hpp) and one WorldBlobs back.
//
// World::create blocks in all_gather, while messages can be sent and received only on the
// actor's own thread (the context is not thread-safe, and the answer arrives as a message to the
// actor). So the two sides meet here, under a mutex: the creating thread (world_joiner's)
// queues its join and waits; the actor thread takes the join, sends it, and hands the arriving
// WorldBlobs (or a delivery failure) back. Neither thread ever waits for the other's mutex for
// longer than a copy.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "kernels/collectives/rendezvous.hpp"
#include "messages/world.hpp"

namespace gfdit {

class bus_rendezvous final : public coll::rendezvous {
 public:
  // The hub fails a round at the joiners' timeout; waiting this much longer lets its answer,
  // which names the missing ranks, arrive before the local deadline gives a bare timeout.
  static constexpr std::chrono::milliseconds answer_grace{500};

  // on_join (optional) runs on the creating thread whenever a join is queued: it wakes the
  // actor thread to take it (context::waker).
  bus_rendezvous(std::string world, int rank, int size, std::function<void()> on_join = {})
      : world_(std::move(world)), rank_(rank), size_(size), on_join_(std::move(on_join)) {}

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  const std::string& world() const noexcept { return world_; }

  // Creating thread: queues this round's join, then waits for its answer (errc::timeout after
  // `timeout` plus the grace, errc::cancelled after cancel()).
  result<std::vector<std::string>> all_gather(std::string_view mine, std::chrono::milliseconds timeout) override;

  // ---- actor thread ----
  // The join waiting to be sent, if any (each is handed out once).
  std::optional<msg::world_join> take_join();
  // An answer; ignored unless it is for this world and the round being waited for.
  void deliver(const msg::world_blobs& m);
  // The round being waited for cannot complete (its join was not delivered).
  void fail(const error& e);
  // Every wait, now and later, fails with errc::cancelled (the actor is shutting down).
  void cancel();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const std::string world_;
  const int rank_;
  const int size_;
  const std::function<void()> on_join_;
  std::uint32_t next_round_ = 0;
  std::optional<msg::world_join> outbox_;
  bool waiting_ = false;
  std::uint32_t waiting_round_ = 0;
  std::optional<result<std::vector<std::string>>> answer_;
  bool cancelled_ = false;
};

}  // namespace gfdit
