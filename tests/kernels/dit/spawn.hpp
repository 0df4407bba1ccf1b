#pragma once
// The DiT worker processes: `gfdit_dit_worker <scenario> <rank> <n> <dir> <extra...>`.
#include "tests/support/rank_processes.hpp"

namespace gfdit::dit::testing {

using gfdit::testing::exit_status;

inline std::vector<exit_status> run_workers(const std::string& scenario, int n, const std::vector<std::string>& extra,
                                            std::chrono::seconds limit) {
  return gfdit::testing::run_ranks(
      gfdit::testing::worker_binary("GFDIT_DIT_WORKER", "gfdit_dit_worker", GFDIT_DIT_WORKER), scenario, n, extra,
      limit);
}

}  // namespace gfdit::dit::testing
