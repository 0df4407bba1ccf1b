#pragma once
// The deterministic backward's schedules (DASH; docs/deterministic-attention.md), on the host
// and the device: which KV tile a claimed item number is, the order in which it visits its Q
// tiles, and its place in each Q tile's dQ accumulation order. The kernels (attention_cuda.cu)
// run these; tests/kernels/attention/dash_schedule_test.cpp checks on the CPU that every Q
// tile's order is a bijection and that no item waits for one claimed after it.
#include <cstdint>
#include <vector>

#include "kernels/attention/attention.hpp"

#if defined(__CUDACC__)
#define GFDIT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GFDIT_HOST_DEVICE inline
#endif

namespace gfdit::attention::dash {

// Q tiles of 64 rows, KV tiles of 128 rows: causal KV tile n meets Q tiles m >= 2n.
inline constexpr int kBwdM = 64;
inline constexpr int kBwdN = 128;

struct bwd_batch {  // per sequence, built on the host
  int start, len, item_start, sem_start;
};

// The item table of a batch of sequences with `heads` heads each: items (one per head and KV
// tile) and Q-tile semaphores numbered sequence by sequence, head-major.
struct bwd_plan {
  std::vector<bwd_batch> table;
  int items = 0, sems = 0;
};
inline bwd_plan make_bwd_plan(const std::vector<int>& starts, const std::vector<int>& lens, int heads) {
  bwd_plan p;
  for (std::size_t b = 0; b < lens.size(); ++b) {
    p.table.push_back(bwd_batch{starts[b], lens[b], p.items, p.sems});
    p.items += heads * ((lens[b] + kBwdN - 1) / kBwdN);
    p.sems += heads * ((lens[b] + kBwdM - 1) / kBwdM);
  }
  return p;
}

// One backward item: KV tile n of head h of sequence b. Items are numbered head-major within a
// sequence; spt hands a head's KV tiles out high n first.
struct bwd_slot {
  int b, h;
  int len, mt, nt, n;
  int F, A, j;  // shift: this head's part of the wave of G items (first, count, n's index in it)
};

GFDIT_HOST_DEVICE int imin(int a, int b) { return a < b ? a : b; }
GFDIT_HOST_DEVICE int imax(int a, int b) { return a > b ? a : b; }

// Item `item` of the table, when G items run at once (the grid).
GFDIT_HOST_DEVICE bwd_slot bwd_locate(const bwd_batch* batches, int batch, int item, int G, schedule sched) {
  int b = 0;
  while (b + 1 < batch && batches[b + 1].item_start <= item) ++b;
  const bwd_batch bt = batches[b];
  bwd_slot s;
  s.b = b;
  s.len = bt.len;
  s.mt = (s.len + kBwdM - 1) / kBwdM;
  s.nt = (s.len + kBwdN - 1) / kBwdN;
  const int local = item - bt.item_start;
  s.h = local / s.nt;
  const int nn = local % s.nt;
  s.n = sched == schedule::spt ? s.nt - 1 - nn : nn;
  const int head_first = bt.item_start + s.h * s.nt;
  const int w0 = (item / G) * G;
  const int wf = imax(w0, head_first), wl = imin(w0 + G, head_first + s.nt);
  s.F = wf - head_first;
  s.A = wl - wf;
  s.j = nn - s.F;
  return s;
}

// First Q tile KV tile n meets.
template <bool CAUSAL>
GFDIT_HOST_DEVICE int bwd_m_min(int n) {
  return CAUSAL ? 2 * n : 0;
}

// How many Q tiles the item visits.
template <bool CAUSAL>
GFDIT_HOST_DEVICE int bwd_visits(const bwd_slot& s) {
  return s.mt - bwd_m_min<CAUSAL>(s.n);
}

// The Q tile an item visits at step t.
template <bool CAUSAL>
GFDIT_HOST_DEVICE int bwd_visit(const bwd_slot& s, schedule sched, int t) {
  switch (sched) {
    case schedule::descending:
      return s.mt - 1 - t;
    case schedule::shift:
      return (s.j + t) % s.mt;
    default:
      return bwd_m_min<CAUSAL>(s.n) + t;
  }
}

// The item's place in Q tile m's accumulation order: a fixed bijection per schedule.
template <bool CAUSAL>
GFDIT_HOST_DEVICE int bwd_rank(const bwd_slot& s, schedule sched, int m) {
  if (sched == schedule::shift) return s.F + ((imin(m, s.A - 1) - s.j) % s.A + s.A) % s.A;
  if (sched == schedule::spt) return (CAUSAL ? imin(m / 2 + 1, s.nt) : s.nt) - 1 - s.n;
  return s.n;
}

}  // namespace gfdit::attention::dash
