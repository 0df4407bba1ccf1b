#pragma once
// The one-time exchange a World needs at creation (NCCL unique id, IPC handles, shm names):
// an all_gather of small byte strings among the world's ranks. file_rendezvous serves tests and
// processes on one host; the serving graph's workers use the message bus behind this interface
// (bus_rendezvous in actors/worker, answered by the world hub in the membership actor).
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gfdit::coll {

class rendezvous {
 public:
  virtual ~rendezvous() = default;
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  // Returns every rank's blob, indexed by rank. Each call is one round; all ranks call it the
  // same number of times. Fails with errc::timeout when a rank does not show up in time.
  virtual result<std::vector<std::string>> all_gather(std::string_view mine, std::chrono::milliseconds timeout) = 0;
};

}  // namespace gfdit::coll
