#include <gtest/gtest.h>

#include "actors/membership/membership_core.hpp"

namespace gfdit {
namespace {

template <class T>
std::vector<T> only(const std::vector<membership_output>& out) {
  std::vector<T> xs;
  for (const auto& o : out)
    if (auto* x = std::get_if<T>(&o)) xs.push_back(*x);
  return xs;
}

membership_core with_workers(int n, std::int64_t now = 0) {
  membership_core m(membership_config{3'000'000});
  for (int i = 0; i < n; ++i) (void)m.on_hello(msg::worker_hello{i, "n", "d", "sim"}, now);
  return m;
}

TEST(membership, group_id_is_the_hash_of_the_ordered_member_list) {
  auto m = with_workers(4);
  auto v = only<msg::group_view>(m.on_form_group(msg::form_group{{2, 0}, "t"}, 1));
  ASSERT_EQ(v.size(), 1u);
  const std::vector<std::int32_t> ordered{2, 0}, other{0, 2};
  EXPECT_EQ(v[0].group_id, hash_sequence(ordered));
  EXPECT_NE(v[0].group_id, hash_sequence(other));
  EXPECT_EQ(v[0].members, ordered);
  EXPECT_TRUE(v[0].active);
  EXPECT_EQ(v[0].epoch, 1u);
}

TEST(membership, epochs_count_incarnations_of_the_same_member_list) {
  auto m = with_workers(2);
  auto v1 = only<msg::group_view>(m.on_form_group(msg::form_group{{0, 1}, ""}, 1));
  auto d = only<msg::group_view>(m.on_dissolve_group(msg::dissolve_group{v1[0].group_id, ""}, 2));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_FALSE(d[0].active);
  EXPECT_EQ(d[0].epoch, 1u);
  auto v2 = only<msg::group_view>(m.on_form_group(msg::form_group{{0, 1}, ""}, 3));
  EXPECT_EQ(v2[0].epoch, 2u);
  EXPECT_TRUE(m.on_dissolve_group(msg::dissolve_group{12345, ""}, 4).empty());  // unknown: no-op
}

TEST(membership, refuses_groups_that_would_put_a_worker_in_two_or_use_unknown_or_repeated_workers) {
  auto m = with_workers(4);
  ASSERT_TRUE(only<msg::group_view>(m.on_form_group(msg::form_group{{0, 1}, ""}, 1))[0].active);
  for (auto members : std::vector<std::vector<std::int32_t>>{{1, 2}, {7}, {2, 2}, {}}) {
    auto v = only<msg::group_view>(m.on_form_group(msg::form_group{members, ""}, 2));
    ASSERT_EQ(v.size(), 1u);
    EXPECT_FALSE(v[0].active);
  }
  EXPECT_EQ(m.refused_forms(), 4u);
  EXPECT_EQ(m.workers().at(2).group_id, 0u);
}

TEST(membership, silence_past_the_timeout_declares_a_worker_down_and_dissolves_its_group) {
  auto m = with_workers(3);
  auto v = only<msg::group_view>(m.on_form_group(msg::form_group{{0, 1}, ""}, 0));
  for (std::int64_t t = 1'000'000; t <= 5'000'000; t += 1'000'000) {
    (void)m.on_heartbeat(msg::worker_heartbeat{0, 0}, t);
    (void)m.on_heartbeat(msg::worker_heartbeat{2, 0}, t);
  }
  EXPECT_TRUE(m.on_tick(3'000'000).empty());  // worker 1 last seen at 0: not yet
  auto out = m.on_tick(5'000'000);
  auto downs = only<msg::worker_down>(out);
  ASSERT_EQ(downs.size(), 1u);
  EXPECT_EQ(downs[0].worker, 1);
  EXPECT_EQ(downs[0].last_seen_us, 0);
  auto views = only<msg::group_view>(out);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].group_id, v[0].group_id);
  EXPECT_FALSE(views[0].active);
  EXPECT_TRUE(m.on_tick(9'000'000).size() == 2);  // now 0 and 2 are silent too
  // A heartbeat does not revive the dead; a hello does.
  (void)m.on_heartbeat(msg::worker_heartbeat{1, 9}, 9'500'000);
  EXPECT_FALSE(m.workers().at(1).alive);
  (void)m.on_hello(msg::worker_hello{1, "n", "d", "sim"}, 9'600'000);
  EXPECT_TRUE(m.workers().at(1).alive);
}

// A restarted membership never saw the workers' hellos: their first heartbeat makes them
// known and alive, so groups form and silence is noticed again.
TEST(membership, a_first_heartbeat_counts_as_a_hello_for_a_worker_never_seen) {
  membership_core m;
  (void)m.on_heartbeat(msg::worker_heartbeat{4, 17}, 1'000'000);
  ASSERT_TRUE(m.workers().count(4));
  EXPECT_TRUE(m.workers().at(4).alive);
  auto v = only<msg::group_view>(m.on_form_group(msg::form_group{{4}, ""}, 1'100'000));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(v[0].active);
  EXPECT_EQ(only<msg::worker_down>(m.on_tick(5'000'000)).size(), 1u);
}

}  // namespace
}  // namespace gfdit
