#pragma once
// The collectives' worker processes: `gfdit_coll_worker <scenario> <rank> <n> <dir> <backend> [mode]`.
#include "tests/support/rank_processes.hpp"

namespace gfdit::coll::testing {

using gfdit::testing::exit_status;

inline std::vector<exit_status> run_workers(const std::string& scenario, int n, const std::string& backend,
                                            std::chrono::seconds limit, const std::string& mode = "") {
  std::vector<std::string> extra = {backend};
  if (!mode.empty()) extra.push_back(mode);
  return gfdit::testing::run_ranks(
      gfdit::testing::worker_binary("GFDIT_COLL_WORKER", "gfdit_coll_worker", GFDIT_COLL_WORKER), scenario, n, extra,
      limit);
}

}  // namespace gfdit::coll::testing
