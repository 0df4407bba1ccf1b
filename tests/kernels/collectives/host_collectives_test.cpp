// Host backend among 4 real processes: every collective for every group shape, overlapping
// groups at the same time, 10,000 form/dissolve cycles, and a killed member.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/collectives/world.hpp"
#include "tests/kernels/collectives/spawn.hpp"

namespace gfdit::coll::testing {
namespace {

void expect_all_passed(const std::vector<exit_status>& st) {
  for (std::size_t r = 0; r < st.size(); ++r)
    EXPECT_TRUE(st[r].exited && st[r].code == 0)
        << "rank " << r << ": exit code " << st[r].code << ", signal " << st[r].signal;
}

TEST(HostCollectives, EveryCollectiveForEveryGroupShapeAmongFourProcesses) {
  expect_all_passed(run_workers("all", 4, "host", std::chrono::seconds(120)));
}

TEST(HostCollectives, OverlappingGroupsRunConcurrently) {
  expect_all_passed(run_workers("overlap", 4, "host", std::chrono::seconds(120)));
}

TEST(HostCollectives, TenThousandFormDissolveCycles) {
  expect_all_passed(run_workers("cycles", 4, "host", std::chrono::seconds(120)));
}

TEST(HostCollectives, DeadMemberMakesCollectiveTimeOutNotHang) {
  auto st = run_workers("dead", 4, "host", std::chrono::seconds(60));
  ASSERT_EQ(st.size(), 4u);
  for (int r = 0; r < 3; ++r)
    EXPECT_TRUE(st[static_cast<std::size_t>(r)].exited && st[static_cast<std::size_t>(r)].code == 0)
        << "survivor " << r << ": exit code " << st[static_cast<std::size_t>(r)].code;
  EXPECT_EQ(st[3].signal, SIGKILL);
}

// Group formation is local: ids follow the ordered member list, bad lists are errors.
TEST(CollGroup, IdIsTheOrderedMemberHashAndFormingValidates) {
  const std::int32_t a[] = {0, 2, 3}, b[] = {3, 2, 0}, dup[] = {1, 1}, out[] = {0, 9};
  auto ga = Group::make(a, 5, 0, 2, 4), gb = Group::make(b, 5, 0, 2, 4);
  ASSERT_TRUE(ga.ok() && gb.ok());
  EXPECT_EQ(ga->id(), hash_sequence(a));
  EXPECT_NE(ga->id(), gb->id());
  EXPECT_EQ(ga->self(), 1);
  EXPECT_EQ(gb->self(), 1);
  EXPECT_EQ(ga->index_of(3), 2);
  EXPECT_FALSE(Group::make(dup, 0, 0, 0, 4).ok());
  EXPECT_FALSE(Group::make(out, 0, 0, 0, 4).ok());
  EXPECT_FALSE(Group::make(std::span<const std::int32_t>{}, 0, 0, 0, 4).ok());
  auto outsider = Group::make(a, 5, 0, 1, 4);
  ASSERT_TRUE(outsider.ok());
  EXPECT_FALSE(outsider->is_member());
}

TEST(CollWorld, SingleRankWorldRunsCollectivesWithItself) {
  const auto dir = std::filesystem::temp_directory_path() / ("gfdit-coll-solo-" + std::to_string(::getpid()));
  file_rendezvous rv(dir, 0, 1);
  auto w = World::create(rv, world_options{});
  ASSERT_TRUE(w.ok()) << w.err().what;
  const std::int32_t m[] = {0};
  auto g = (*w)->form(m, 1);
  ASSERT_TRUE(g.ok());
  float x[3] = {1.5f, 2.5f, -1.f}, y[3] = {};
  ASSERT_TRUE((*w)->all_reduce(*g, dtype::f32, x, y, 3).ok());
  EXPECT_EQ(std::memcmp(x, y, sizeof x), 0);
  const std::int32_t other[] = {0, 1};
  EXPECT_FALSE((*w)->form(other, 1).ok());  // rank 1 is not in a world of one
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gfdit::coll::testing
