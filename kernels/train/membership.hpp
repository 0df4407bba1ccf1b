#pragma once
// Elastic data parallelism: which of a run's worker processes (its pool, the World's ranks)
// take each step. An operator changes it while the run goes on by writing the run's members
// file (`OUT/members`, or `gfdit train --out OUT --members ...`), one change a line:
//   0 1 3        these ranks from the next step on
//   400: 0 2     these ranks from step 400 on (steps numbered from 1, as the progress lines)
// The latest line that applies to a step wins; before any applies every rank of the pool takes
// part. Rank 0 writes the checkpoints, so it always takes part. A leaving rank stays in the pool,
// idle (its process keeps its place in the World); a joining rank receives the weights and the
// optimizer's state from rank 0 before its first step. The reduction's tree makes any group of
// any size give the same bits (reduce.hpp), so a change never changes the weights.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gfdit::train {

struct membership_change {
  std::int64_t from_step = 0;         // the first step (counted from 0: steps already taken) it applies to
  std::vector<std::int32_t> members;  // ascending ranks of the pool, 0 among them
};

// Parses a members file's text for a pool of `pool` ranks and a global batch of `batch`. An
// error names the line and what is wrong (a rank outside the pool, twice, rank 0 missing, more
// members than samples).
result<std::vector<membership_change>> parse_membership(std::string_view text, int pool, int batch);

// The ranks that take step `step` (from 1): the last change whose from_step is at most `step`,
// or every rank of the pool.
std::vector<std::int32_t> members_at(const std::vector<membership_change>& plan, std::int64_t step, int pool);

// A members file as whoever decides the steps sees it: read before every step, parsed when it
// changed; a file that does not parse is reported once (through `note`, with its line) and the
// plan before it stays. An empty path: every rank of the pool, always.
class members_file {
 public:
  members_file(std::filesystem::path file, int pool, int batch, std::function<void(const std::string&)> note)
      : file_(std::move(file)), pool_(pool), batch_(batch), note_(std::move(note)) {}
  std::vector<std::int32_t> members(std::int64_t step);

 private:
  void refuse(const std::string& why);
  std::filesystem::path file_;
  int pool_, batch_;
  std::function<void(const std::string&)> note_;
  std::string seen_, refused_;
  std::vector<membership_change> plan_;
};

// "0 2 3": ranks as a members file and the log write them.
std::string ranks_text(const std::vector<std::int32_t>& ranks);

// Writes `members` as a change from the next step on, replacing the file atomically.
result<void> write_membership(const std::filesystem::path& file, const std::vector<std::int32_t>& members);

}  // namespace gfdit::train
