// The graph's worker names: worker_id reads back exactly what worker() writes (the simulator
// delivers by it) and nothing else.
#include <gtest/gtest.h>

#include "actors/serving/serving_names.hpp"

namespace gfdit {
namespace {

namespace names = serving_names;

TEST(serving_names, worker_id_inverts_worker_and_refuses_every_other_name) {
  for (std::int32_t id : {0, 7, 63, 4095, 2147483647}) EXPECT_EQ(names::worker_id(names::worker(id)), id);
  EXPECT_EQ(names::worker(12), "worker-12");
  for (const char* other : {"scheduler", "worker-", "worker-01", "worker--1", "worker-+1", "worker-1x",
                            "worker-2147483648", "workers", "xworker-1"})
    EXPECT_EQ(names::worker_id(other), -1) << other;
}

}  // namespace
}  // namespace gfdit
