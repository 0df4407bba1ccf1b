#pragma once
// Joins a World through the bus without blocking the actor thread. The job (World::create, or
// a backend that creates one) runs on a thread of its own with a bus_rendezvous; whenever that
// thread queues a join, and once it has finished, it calls `wake` (the actor's context::waker),
// and the actor thread then calls poll(): it sends the waiting join to the hub and, once the job
// has finished, joins the thread and returns the job's result. WorldBlobs arriving at the actor
// go to deliver(). The graph is only wired after every actor is configured, so start it from
// on_activate.
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "actors/runtime/context.hpp"
#include "actors/worker/bus_rendezvous.hpp"

namespace gfdit {

class world_joiner {
 public:
  using job = std::function<result<void>(coll::rendezvous&)>;

  // Starts the job's thread at once.
  world_joiner(std::string hub, std::string world, int rank, int size, job fn, std::function<void()> wake);
  // Cancels a wait in progress and joins the thread.
  ~world_joiner();
  world_joiner(const world_joiner&) = delete;
  world_joiner& operator=(const world_joiner&) = delete;

  // ---- actor thread ----
  // On each wake: sends a waiting join; the job's result once it has finished (the thread is
  // joined then; later calls return it again).
  std::optional<result<void>> poll(context& ctx);
  void deliver(const msg::world_blobs& m) { rv_.deliver(m); }
  // A directed message of ours was not delivered: if it was a join, its round fails.
  void on_delivery_failure(const error& e, std::uint32_t type_id);

  const std::string& hub() const noexcept { return hub_; }

 private:
  std::string hub_;
  bus_rendezvous rv_;
  std::optional<result<void>> result_;  // written by the thread before done_
  std::atomic<bool> done_{false};
  bool joined_ = false;
  std::thread thread_;
};

}  // namespace gfdit
