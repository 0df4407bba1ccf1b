// The world hub core, message in / message out: rounds complete in rank order, conflicts fail a
// round at once for everyone in it, and a round missing a rank fails at its deadline.
#include <gtest/gtest.h>

#include <set>

#include "actors/membership/world_hub.hpp"
#include "messages/codec.hpp"

namespace gfdit {
namespace {

msg::world_bytes bytes(const std::string& s) { return {s.begin(), s.end()}; }

msg::world_join join(std::int32_t rank, std::int32_t size, std::uint32_t round = 0, std::string blob = "",
                     std::string world = "w", std::int64_t timeout_ms = 1000) {
  if (blob.empty()) blob = "blob-" + std::to_string(rank) + "-" + std::to_string(round);
  return msg::world_join{std::move(world), rank, size, round, timeout_ms, bytes(blob)};
}

std::string actor(std::int32_t rank) { return "worker-" + std::to_string(rank); }

TEST(world_hub, a_round_completes_when_every_rank_joined_and_answers_each_with_all_blobs_in_rank_order) {
  world_hub hub;
  // Ranks arrive out of order; nothing is answered until the last one.
  for (std::int32_t r : {2, 0, 3}) EXPECT_TRUE(hub.on_join(join(r, 4), actor(r), 10).empty());
  EXPECT_EQ(hub.rounds(), 1u);
  auto out = hub.on_join(join(1, 4), actor(1), 20);
  ASSERT_EQ(out.size(), 4u);
  for (std::int32_t r = 0; r < 4; ++r) {
    EXPECT_EQ(out[static_cast<std::size_t>(r)].to, actor(r));
    const auto& b = out[static_cast<std::size_t>(r)].blobs;
    EXPECT_EQ(b.world, "w");
    EXPECT_EQ(b.round, 0u);
    EXPECT_TRUE(b.error.empty()) << b.error;
    EXPECT_FALSE(b.timed_out);
    ASSERT_EQ(b.blobs.size(), 4u);
    for (std::int32_t k = 0; k < 4; ++k)
      EXPECT_EQ(b.blobs[static_cast<std::size_t>(k)], bytes("blob-" + std::to_string(k) + "-0"));
  }
  EXPECT_EQ(hub.rounds(), 0u);  // forgotten once answered
  EXPECT_EQ(hub.completed_rounds(), 1u);
  // The next round is a new one; a deadline long past round 0 fails nothing.
  EXPECT_TRUE(hub.on_join(join(0, 4, 1), actor(0), 30).empty());
  EXPECT_TRUE(hub.on_tick(500'000).empty());
}

TEST(world_hub, blobs_are_binary_and_survive_the_codec) {
  world_hub hub;
  const std::string raw("\0\xff\x01nccl-id\0", 11);
  (void)hub.on_join(join(0, 2, 0, raw), actor(0), 0);
  auto out = hub.on_join(join(1, 2, 0, std::string(128, '\x80')), actor(1), 0);
  ASSERT_EQ(out.size(), 2u);
  auto back = decode<msg::world_blobs>(encode(out[0].blobs));
  ASSERT_TRUE(back) << back.err().what;
  ASSERT_EQ(back->blobs.size(), 2u);
  EXPECT_EQ(std::string(back->blobs[0].begin(), back->blobs[0].end()), raw);
  EXPECT_EQ(back->blobs[1].size(), 128u);
}

TEST(world_hub, worlds_and_rounds_are_independent) {
  world_hub hub;
  EXPECT_TRUE(hub.on_join(join(0, 2, 0, "a0", "a"), "x", 0).empty());
  EXPECT_TRUE(hub.on_join(join(0, 2, 0, "b0", "b"), "y", 0).empty());
  EXPECT_TRUE(hub.on_join(join(1, 2, 1, "a1", "a"), "x1", 0).empty());  // round 1 is not round 0
  auto out = hub.on_join(join(1, 2, 0, "b1", "b"), "y1", 0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].blobs.world, "b");
  EXPECT_EQ(out[0].blobs.blobs[1], bytes("b1"));
  EXPECT_EQ(hub.rounds(), 2u);  // a/0 and a/1 still open
}

TEST(world_hub, a_rank_joining_twice_fails_the_round_at_once_for_everyone_in_it) {
  world_hub hub;
  (void)hub.on_join(join(0, 3), actor(0), 0);
  (void)hub.on_join(join(1, 3), "worker-1", 0);
  auto out = hub.on_join(join(1, 3), "impostor", 5);
  ASSERT_EQ(out.size(), 3u);  // ranks 0 and 1 as joined, and the second claimant of rank 1
  std::set<std::string> told;
  for (const auto& o : out) {
    told.insert(o.to);
    EXPECT_TRUE(o.blobs.blobs.empty());
    EXPECT_FALSE(o.blobs.timed_out);
    EXPECT_NE(o.blobs.error.find("rank 1 joined twice"), std::string::npos) << o.blobs.error;
    EXPECT_NE(o.blobs.error.find("'impostor'"), std::string::npos) << o.blobs.error;
  }
  EXPECT_EQ(told, (std::set<std::string>{"worker-0", "worker-1", "impostor"}));
  EXPECT_EQ(hub.failed_rounds(), 1u);
  // A late rank of the failed round hears the same reason at once, not after the timeout.
  auto late = hub.on_join(join(2, 3), actor(2), 10);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].to, actor(2));
  EXPECT_EQ(late[0].blobs.error, out[0].blobs.error);
  // The failed round is dropped at its deadline, silently (everyone was told).
  EXPECT_TRUE(hub.on_tick(1'000'000).empty());
  EXPECT_EQ(hub.rounds(), 0u);
}

TEST(world_hub, a_size_that_disagrees_with_the_round_fails_it) {
  world_hub hub;
  (void)hub.on_join(join(0, 4), actor(0), 0);
  auto out = hub.on_join(join(1, 2), actor(1), 0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].to, actor(0));
  EXPECT_EQ(out[1].to, actor(1));
  for (const auto& o : out) {
    EXPECT_NE(o.blobs.error.find("says size 2"), std::string::npos) << o.blobs.error;
    EXPECT_NE(o.blobs.error.find("opened with size 4"), std::string::npos) << o.blobs.error;
  }
}

TEST(world_hub, an_invalid_join_is_answered_alone_and_leaves_the_round_alone) {
  world_hub hub;
  (void)hub.on_join(join(0, 2), actor(0), 0);
  for (auto bad : {join(2, 2), join(-1, 2), join(0, 0), join(0, world_hub::max_size + 1), join(1, 2, 0, "", "w", 0)}) {
    auto out = hub.on_join(bad, "bad", 0);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].to, "bad");
    EXPECT_NE(out[0].blobs.error.find("invalid join"), std::string::npos) << out[0].blobs.error;
  }
  auto out = hub.on_join(join(1, 2), actor(1), 0);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].blobs.error.empty());
}

TEST(world_hub, a_round_missing_a_rank_fails_at_the_earliest_deadline_naming_the_missing_ranks) {
  world_hub hub;
  // Deadlines: rank 0 at 100 ms + 1000 ms, rank 2 at 300 ms + 500 ms = 800 ms (the earliest).
  (void)hub.on_join(join(0, 4, 0, "", "w", 1000), actor(0), 100'000);
  (void)hub.on_join(join(2, 4, 0, "", "w", 500), actor(2), 300'000);
  EXPECT_TRUE(hub.on_tick(799'999).empty());
  auto out = hub.on_tick(800'000);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].to, actor(0));
  EXPECT_EQ(out[1].to, actor(2));
  for (const auto& o : out) {
    EXPECT_TRUE(o.blobs.timed_out);
    EXPECT_TRUE(o.blobs.blobs.empty());
    EXPECT_NE(o.blobs.error.find("timed out after 700 ms"), std::string::npos) << o.blobs.error;
    EXPECT_NE(o.blobs.error.find("2 of 4 ranks joined; missing rank(s) 1, 3"), std::string::npos) << o.blobs.error;
  }
  EXPECT_EQ(hub.rounds(), 0u);
  EXPECT_EQ(hub.failed_rounds(), 1u);
  // A rank that comes after that opens the round afresh (and would wait for the others again).
  EXPECT_TRUE(hub.on_join(join(1, 4), actor(1), 900'000).empty());
  EXPECT_EQ(hub.rounds(), 1u);
}

TEST(world_hub, the_same_joins_give_the_same_answers) {
  auto run = [] {
    world_hub hub;
    std::vector<world_hub_reply> all;
    for (std::int32_t r : {3, 1, 0, 2}) {
      auto out = hub.on_join(join(r, 4), actor(r), r);
      all.insert(all.end(), out.begin(), out.end());
    }
    return all;
  };
  auto a = run(), b = run();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].to, b[i].to);
    EXPECT_EQ(encode(a[i].blobs), encode(b[i].blobs));
  }
}

}  // namespace
}  // namespace gfdit
