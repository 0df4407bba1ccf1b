// The deterministic backward's schedules (kernels/attention/dash_schedule.hpp) on the CPU, for
// ragged batches, causal and full masks and several grid sizes: every item visits each Q tile it
// meets exactly once, every Q tile's accumulation order is a bijection onto 0..k-1 over the items
// that meet it (so the dQ adds happen in one fixed order), and an item never waits for an item
// claimed after it outside its own wave (items are claimed in increasing order; a wave of G runs
// at once), which is what keeps the kernel free of deadlock.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "kernels/attention/dash_schedule.hpp"

namespace gfdit::attention::dash {
namespace {

struct layout {
  std::vector<int> lens;
  int heads;
};

template <bool CAUSAL>
void check(const layout& l, schedule sched, int G) {
  std::vector<int> starts;
  int at = 0;
  for (int len : l.lens) {
    starts.push_back(at);
    at += len;
  }
  const bwd_plan plan = make_bwd_plan(starts, l.lens, l.heads);
  // (sequence, head, Q tile) -> rank -> item
  std::map<std::tuple<int, int, int>, std::map<int, int>> order;
  for (int item = 0; item < plan.items; ++item) {
    const bwd_slot s = bwd_locate(plan.table.data(), static_cast<int>(plan.table.size()), item, G, sched);
    ASSERT_LT(s.n, s.nt);
    ASSERT_LT(s.h, l.heads);
    std::set<int> seen;
    for (int t = 0; t < bwd_visits<CAUSAL>(s); ++t) {
      const int m = bwd_visit<CAUSAL>(s, sched, t);
      ASSERT_GE(m, bwd_m_min<CAUSAL>(s.n)) << "item " << item;
      ASSERT_LT(m, s.mt) << "item " << item;
      ASSERT_TRUE(seen.insert(m).second) << "item " << item << " visits Q tile " << m << " twice";
      const int rank = bwd_rank<CAUSAL>(s, sched, m);
      auto& ranks = order[{s.b, s.h, m}];
      ASSERT_TRUE(ranks.emplace(rank, item).second) << "Q tile " << m << " of head " << s.h << ": rank " << rank
                                                    << " given to items " << ranks[rank] << " and " << item;
    }
  }
  for (const auto& [tile, ranks] : order) {
    int expected = 0;
    for (const auto& [rank, item] : ranks) {
      ASSERT_EQ(rank, expected) << "Q tile " << std::get<2>(tile) << ": ranks are not 0..k-1";
      ++expected;
    }
    for (auto it = ranks.begin(); it != ranks.end(); ++it)
      for (auto before = ranks.begin(); before != it; ++before)
        EXPECT_TRUE(before->second < it->second || before->second / G == it->second / G)
            << "item " << it->second << " waits for item " << before->second << ", claimed later in another wave";
  }
}

const std::vector<layout> layouts = {{{64}, 1}, {{1000}, 3}, {{4096}, 2}, {{129, 1, 700, 2048}, 2}, {{8192, 300}, 4}};

TEST(dash_schedule, every_q_tile_has_one_fixed_order_and_no_item_waits_for_a_later_one) {
  for (const auto& l : layouts)
    for (int G : {1, 7, 132, 264, 100000}) {
      SCOPED_TRACE("G " + std::to_string(G) + ", sequences " + std::to_string(l.lens.size()));
      for (schedule sched : {schedule::ascending, schedule::descending, schedule::spt}) {
        SCOPED_TRACE(std::string(to_string(sched)));
        check<true>(l, sched, G);
        check<false>(l, sched, G);
      }
      SCOPED_TRACE("shift");
      check<false>(l, schedule::shift, G);  // full mask only
    }
}

TEST(dash_schedule, the_table_numbers_items_and_semaphores_sequence_by_sequence) {
  const bwd_plan p = make_bwd_plan({0, 129, 130}, {129, 1, 700}, 2);
  ASSERT_EQ(p.table.size(), 3u);
  EXPECT_EQ(p.items, 2 * (2 + 1 + 6));
  EXPECT_EQ(p.sems, 2 * (3 + 1 + 11));
  EXPECT_EQ(p.table[1].item_start, 4);
  EXPECT_EQ(p.table[1].sem_start, 6);
  EXPECT_EQ(p.table[2].start, 130);
  const bwd_slot s = bwd_locate(p.table.data(), 3, 7, 1000, schedule::spt);  // sequence 2, head 0, second KV tile
  EXPECT_EQ(s.b, 2);
  EXPECT_EQ(s.h, 0);
  EXPECT_EQ(s.n, 6 - 1 - 1);  // spt hands a head's tiles out high n first
}

}  // namespace
}  // namespace gfdit::attention::dash
