// Scenarios run by every rank of a host-backend world (see worker_main.cpp).
#include <algorithm>
#include <atomic>
#include <bit>
#include <csignal>
#include <cstring>
#include <random>
#include <thread>

#include "kernels/collectives/world.hpp"
#include "tests/kernels/collectives/worker_common.hpp"

namespace gfdit::coll::testing {
namespace {

std::string str(const result<void>& r) { return r ? "ok" : std::string(to_string(r.err().code)) + ": " + r.err().what; }

float bf16_f(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t{h} << 16); }
std::uint16_t f_bf16(float f) {
  const auto u = std::bit_cast<std::uint32_t>(f);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Every non-empty subset of the world, ascending, plus the reversed order of each with >= 2
// members (the order is part of a group's identity).
std::vector<std::vector<std::int32_t>> shapes(int size) {
  std::vector<std::vector<std::int32_t>> out;
  for (std::uint32_t m = 1; m < (1u << size); ++m) {
    std::vector<std::int32_t> g;
    for (int r = 0; r < size; ++r)
      if (m >> r & 1u) g.push_back(r);
    out.push_back(g);
  }
  const auto n = out.size();
  for (std::size_t i = 0; i < n; ++i)
    if (out[i].size() >= 2) out.emplace_back(out[i].rbegin(), out[i].rend());
  return out;
}

void run_collectives(World& w, const Group& g, std::uint64_t salt, checker& ck) {
  const int n = g.size(), me = g.self();
  const auto tag = [&](const char* what) {
    std::string s = std::string(what) + " group {";
    for (auto r : g.members()) s += std::to_string(r) + ",";
    return s + "}";
  };
  // all_to_all, an odd size and one that needs several rounds of the 64 KiB buffer.
  for (std::size_t bytes : {std::size_t{1000}, std::size_t{40000}}) {
    std::vector<std::uint8_t> send, recv(bytes * static_cast<std::size_t>(n));
    for (int j = 0; j < n; ++j) {
      auto b = bytes_of(salt + bytes, g.member(me), g.member(j), bytes);
      send.insert(send.end(), b.begin(), b.end());
    }
    auto r = w.all_to_all(g, send.data(), recv.data(), bytes);
    ck.expect(r.ok(), tag("all_to_all") + " " + str(r));
    bool ok = true;
    for (int j = 0; j < n; ++j)
      ok &= bytes_of(salt + bytes, g.member(j), g.member(me), bytes) ==
            std::vector<std::uint8_t>(recv.begin() + j * static_cast<long>(bytes),
                                      recv.begin() + (j + 1) * static_cast<long>(bytes));
    ck.expect(ok, tag("all_to_all data") + " bytes=" + std::to_string(bytes));
  }
  {  // all_to_all_v: sizes differ per edge, some are empty
    auto sz = [&](int a, int b) { return static_cast<std::size_t>(((g.member(a) + 2 * g.member(b)) % 4) * 333); };
    std::vector<std::size_t> sb(n), so(n), rb(n), ro(n);
    std::size_t st = 0, rt = 0;
    for (int j = 0; j < n; ++j) {
      sb[j] = sz(me, j);
      so[j] = st;
      st += sb[j] + 5;  // gaps between segments
      rb[j] = sz(j, me);
      ro[j] = rt;
      rt += rb[j] + 3;
    }
    std::vector<std::uint8_t> send(st + 1), recv(rt + 1, 0xEE);
    for (int j = 0; j < n; ++j) {
      auto b = bytes_of(salt + 7, g.member(me), g.member(j), sb[j]);
      std::copy(b.begin(), b.end(), send.begin() + static_cast<long>(so[j]));
    }
    auto r = w.all_to_all_v(g, send.data(), sb, so, recv.data(), rb, ro);
    ck.expect(r.ok(), tag("all_to_all_v") + " " + str(r));
    bool ok = true;
    for (int j = 0; j < n; ++j)
      ok &= bytes_of(salt + 7, g.member(j), g.member(me), rb[j]) ==
            std::vector<std::uint8_t>(recv.begin() + static_cast<long>(ro[j]),
                                      recv.begin() + static_cast<long>(ro[j] + rb[j]));
    ck.expect(ok, tag("all_to_all_v data"));
  }
  for (std::size_t bytes : {std::size_t{777}, std::size_t{70000}}) {  // all_gather
    auto send = bytes_of(salt + 11, g.member(me), 0, bytes);
    std::vector<std::uint8_t> recv(bytes * static_cast<std::size_t>(n));
    auto r = w.all_gather(g, send.data(), recv.data(), bytes);
    ck.expect(r.ok(), tag("all_gather") + " " + str(r));
    bool ok = true;
    for (int j = 0; j < n; ++j)
      ok &= bytes_of(salt + 11, g.member(j), 0, bytes) ==
            std::vector<std::uint8_t>(recv.begin() + j * static_cast<long>(bytes),
                                      recv.begin() + (j + 1) * static_cast<long>(bytes));
    ck.expect(ok, tag("all_gather data") + " bytes=" + std::to_string(bytes));
  }
  {  // all_gather from the symmetric region (published without the staging copy)
    const std::size_t bytes = 4096;
    auto* sym = static_cast<std::uint8_t*>(w.symmetric(g.channel()));
    auto b = bytes_of(salt + 12, g.member(me), 0, bytes);
    std::copy(b.begin(), b.end(), sym + 128);
    std::vector<std::uint8_t> recv(bytes * static_cast<std::size_t>(n));
    auto r = w.all_gather(g, sym + 128, recv.data(), bytes);
    bool ok = r.ok();
    for (int j = 0; j < n; ++j)
      ok &= bytes_of(salt + 12, g.member(j), 0, bytes) ==
            std::vector<std::uint8_t>(recv.begin() + j * static_cast<long>(bytes),
                                      recv.begin() + (j + 1) * static_cast<long>(bytes));
    ck.expect(ok, tag("all_gather zero-copy") + " " + str(r));
  }
  {  // one-sided: every member stores its slot into every member's symmetric area; a barrier
     // publishes the stores (World::peer_symmetric)
    const std::size_t bytes = 512, base = 8192;
    auto b = bytes_of(salt + 15, g.member(me), 0, bytes);
    bool ok = true;
    for (int j = 0; j < n; ++j) {
      auto* peer = static_cast<std::uint8_t*>(w.peer_symmetric(g.channel(), g.member(j)));
      ok &= peer != nullptr;
      if (peer) std::copy(b.begin(), b.end(), peer + base + static_cast<std::size_t>(me) * bytes);
    }
    ok &= w.peer_symmetric(g.channel(), g.member(me)) == w.symmetric(g.channel());
    ok &= w.barrier(g).ok();
    const auto* mine = static_cast<const std::uint8_t*>(w.symmetric(g.channel()));
    for (int j = 0; j < n; ++j)
      ok &= bytes_of(salt + 15, g.member(j), 0, bytes) ==
            std::vector<std::uint8_t>(mine + base + j * bytes, mine + base + (j + 1) * bytes);
    ok &= w.barrier(g).ok();  // nobody stores again before every member has read
    ck.expect(ok, tag("peer_symmetric stores"));
  }
  for (int root = 0; root < n; ++root) {  // gather and scatter from every root
    const std::size_t bytes = 513;
    auto send = bytes_of(salt + 13, g.member(me), root, bytes);
    std::vector<std::uint8_t> recv(bytes * static_cast<std::size_t>(n), 0);
    auto r = w.gather(g, root, send.data(), recv.data(), bytes);
    bool ok = r.ok();
    if (me == root)
      for (int j = 0; j < n; ++j)
        ok &= bytes_of(salt + 13, g.member(j), root, bytes) ==
              std::vector<std::uint8_t>(recv.begin() + j * static_cast<long>(bytes),
                                        recv.begin() + (j + 1) * static_cast<long>(bytes));
    ck.expect(ok, tag("gather") + " root=" + std::to_string(root) + " " + str(r));
    std::vector<std::uint8_t> ssend;
    if (me == root)
      for (int j = 0; j < n; ++j) {
        auto b = bytes_of(salt + 14, root, g.member(j), bytes);
        ssend.insert(ssend.end(), b.begin(), b.end());
      }
    std::vector<std::uint8_t> srecv(bytes);
    r = w.scatter(g, root, ssend.data(), srecv.data(), bytes);
    ck.expect(r.ok() && srecv == bytes_of(salt + 14, root, g.member(me), bytes),
              tag("scatter") + " root=" + std::to_string(root) + " " + str(r));
  }
  // send/recv: every ordered pair in one global order; only the two ends act.
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      if (a == b || (me != a && me != b)) continue;
      const std::size_t bytes = (a == 0 && b == n - 1) ? 100000 : 300;  // one needs rounds
      if (me == a) {
        auto data = bytes_of(salt + 15, g.member(a), g.member(b), bytes);
        auto r = w.send(g, b, data.data(), bytes);
        ck.expect(r.ok(), tag("send") + " " + str(r));
      } else {
        std::vector<std::uint8_t> data(bytes);
        auto r = w.recv(g, a, data.data(), bytes);
        ck.expect(r.ok() && data == bytes_of(salt + 15, g.member(a), g.member(b), bytes), tag("recv") + " " + str(r));
      }
    }
  ck.expect(w.barrier(g).ok(), tag("barrier"));
  {                                   // deterministic all_reduce, f32: bitwise equal to the member-order sum
    const std::size_t count = 20001;  // several pieces of the 64 KiB buffer
    auto val = [&](int j, std::size_t i) {
      return (static_cast<float>(pattern(salt + 16, g.member(j), 0, i)) - 127.5f) * 0.1234567f +
             1e-3f * static_cast<float>(pattern(salt + 17, g.member(j), 0, i));
    };
    std::vector<float> send(count), recv(count), want(count);
    for (std::size_t i = 0; i < count; ++i) {
      send[i] = val(me, i);
      float acc = val(0, i);
      for (int j = 1; j < n; ++j) acc += val(j, i);
      want[i] = acc;
    }
    auto r = w.all_reduce(g, dtype::f32, send.data(), recv.data(), count);
    ck.expect(r.ok() && std::memcmp(recv.data(), want.data(), count * 4) == 0, tag("all_reduce f32") + " " + str(r));
    r = w.all_reduce(g, dtype::f32, send.data(), send.data(), count);  // in place
    ck.expect(r.ok() && std::memcmp(send.data(), want.data(), count * 4) == 0,
              tag("all_reduce f32 in place") + " " + str(r));
  }
  {  // bf16: summed in fp32 in member order, rounded once
    const std::size_t count = 999;
    auto val = [&](int j, std::size_t i) {
      return f_bf16((static_cast<float>(pattern(salt + 18, g.member(j), 0, i)) - 100.f) * 0.0371f);
    };
    std::vector<std::uint16_t> send(count), recv(count), want(count);
    for (std::size_t i = 0; i < count; ++i) {
      send[i] = val(me, i);
      float acc = bf16_f(val(0, i));
      for (int j = 1; j < n; ++j) acc += bf16_f(val(j, i));
      want[i] = f_bf16(acc);
    }
    auto r = w.all_reduce(g, dtype::bf16, send.data(), recv.data(), count);
    ck.expect(r.ok() && recv == want, tag("all_reduce bf16") + " " + str(r));
  }
  {
    const std::size_t count = 3001;
    std::vector<std::int32_t> send(count), recv(count), want(count, 0);
    for (std::size_t i = 0; i < count; ++i) {
      send[i] = static_cast<std::int32_t>(i) * (g.member(me) + 1);
      for (int j = 0; j < n; ++j) want[i] += static_cast<std::int32_t>(i) * (g.member(j) + 1);
    }
    auto r = w.all_reduce(g, dtype::i32, send.data(), recv.data(), count);
    ck.expect(r.ok() && recv == want, tag("all_reduce i32") + " " + str(r));
  }
}

// Every member of either group calls reshard; checks my new shard against the global tensor.
void run_reshard(World& w, const Group& a, const Group& b, std::uint64_t salt, checker& ck) {
  const token_layout L{37, 24};
  const std::int64_t T = L.tokens;
  auto row = [&](std::int64_t t) { return bytes_of(salt, t, 0, L.row_bytes); };
  std::vector<std::uint8_t> src, dst;
  if (const int ia = a.index_of(w.rank()); ia >= 0)
    for (auto t = shard_begin(T, a.size(), ia); t < shard_begin(T, a.size(), ia + 1); ++t) {
      auto r = row(t);
      src.insert(src.end(), r.begin(), r.end());
    }
  const int ib = b.index_of(w.rank());
  if (ib >= 0) dst.assign(static_cast<std::size_t>(shard_rows(T, b.size(), ib)) * L.row_bytes + 1, 0xAB);
  auto r = w.reshard(a, b, L, src.data(), dst.data());
  std::string what = "reshard {";
  for (auto m : a.members()) what += std::to_string(m) + ",";
  what += "} -> {";
  for (auto m : b.members()) what += std::to_string(m) + ",";
  what += "} " + str(r);
  bool ok = r.ok();
  if (ib >= 0) {
    std::vector<std::uint8_t> want;
    for (auto t = shard_begin(T, b.size(), ib); t < shard_begin(T, b.size(), ib + 1); ++t) {
      auto rr = row(t);
      want.insert(want.end(), rr.begin(), rr.end());
    }
    want.push_back(0xAB);  // nothing written past the shard
    ok &= dst == want;
  }
  ck.expect(ok, what);
}

}  // namespace

int scenario_all(World& w, checker& ck) {
  const auto all = shapes(w.size());
  std::vector<Group> groups;
  for (std::size_t i = 0; i < all.size(); ++i) {
    auto g = w.form(all[i], /*epoch=*/i);
    if (!ck.expect(g.ok(), "form")) return 1;
    groups.push_back(*g);
  }
  for (std::size_t i = 0; i < groups.size(); ++i)
    if (groups[i].is_member()) run_collectives(w, groups[i], 1000 * i, ck);
  // Reshard between every pair of shapes: same, overlapping, disjoint, reordered.
  for (std::size_t i = 0; i < groups.size(); ++i)
    for (std::size_t j = 0; j < groups.size(); ++j)
      if (groups[i].is_member() || groups[j].is_member()) run_reshard(w, groups[i], groups[j], i * 131 + j, ck);
  return 0;
}

// Overlapping groups at the same time: two threads per process, each driving one group on its
// own channel; members of both groups run both threads concurrently.
int scenario_overlap(World& w, checker& ck) {
  const int s = w.size();
  std::vector<std::int32_t> m0, m1;
  for (int r = 0; r < s - 1; ++r) m0.push_back(r);   // {0..s-2}
  for (int r = s - 1; r >= 1; --r) m1.push_back(r);  // {s-1..1}, reversed order
  auto g0 = w.form(m0, 1, 0), g1 = w.form(m1, 1, 1);
  if (!ck.expect(g0.ok() && g1.ok(), "form overlapping")) return 1;
  std::atomic<int> bad{0};
  auto drive = [&](const Group& g, std::uint64_t salt) {
    for (int it = 0; it < 300; ++it) {
      const std::size_t bytes = 256 + static_cast<std::size_t>(it % 7) * 1000;
      auto send = bytes_of(salt + it, g.member(g.self()), 0, bytes);
      std::vector<std::uint8_t> recv(bytes * static_cast<std::size_t>(g.size()));
      auto r = w.all_gather(g, send.data(), recv.data(), bytes);
      bool ok = r.ok();
      for (int j = 0; j < g.size() && ok; ++j)
        ok &= bytes_of(salt + it, g.member(j), 0, bytes) ==
              std::vector<std::uint8_t>(recv.begin() + j * static_cast<long>(bytes),
                                        recv.begin() + (j + 1) * static_cast<long>(bytes));
      if (!ok) {
        ++bad;
        std::fprintf(stderr, "[rank %d] overlap: iteration %d failed: %s\n", w.rank(), it, str(r).c_str());
        return;
      }
    }
  };
  std::thread t0, t1;
  if (g0->is_member()) t0 = std::thread(drive, std::cref(*g0), 100);
  if (g1->is_member()) t1 = std::thread(drive, std::cref(*g1), 900000);
  if (t0.joinable()) t0.join();
  if (t1.joinable()) t1.join();
  ck.expect(bad == 0, "overlapping groups on two channels");
  // The same two groups interleaved on one channel, in one thread (same program order per pair).
  auto h0 = w.form(m0, 2, 0), h1 = w.form(m1, 2, 0);
  for (int it = 0; it < 200; ++it) {
    for (const Group* g : {&*h0, &*h1}) {
      if (!g->is_member()) continue;
      std::int32_t v = it * 100 + w.rank(), sum = 0;
      auto r = w.all_reduce(*g, dtype::i32, &v, &sum, 1);
      std::int32_t want = 0;
      for (auto m : g->members()) want += it * 100 + m;
      if (!ck.expect(r.ok() && sum == want, "interleaved overlapping groups, one channel: " + str(r))) return 1;
    }
  }
  return 0;
}

// 10,000 rapid form/dissolve cycles: each cycle forms a random group (the same sequence on every
// rank) with a new epoch, its members run a barrier (and every 50th cycle an all_gather whose
// data proves the right peers met), then the group is dropped.
int scenario_cycles(World& w, checker& ck) {
  std::mt19937_64 rng(42);
  const int s = w.size();
  for (int cycle = 0; cycle < 10000; ++cycle) {
    std::vector<std::int32_t> m(static_cast<std::size_t>(s));
    for (int r = 0; r < s; ++r) m[static_cast<std::size_t>(r)] = r;
    std::shuffle(m.begin(), m.end(), rng);
    m.resize(1 + rng() % static_cast<std::uint64_t>(s));
    auto g = w.form(m, static_cast<std::uint64_t>(cycle));
    if (!ck.expect(g.ok(), "form in cycle")) return 1;
    if (!g->is_member()) continue;
    if (cycle % 50 == 0) {
      std::int32_t mine = cycle * 64 + w.rank();
      std::vector<std::int32_t> all(m.size());
      auto r = w.all_gather(*g, &mine, all.data(), 4);
      bool ok = r.ok();
      for (std::size_t j = 0; j < m.size(); ++j) ok &= all[j] == cycle * 64 + m[j];
      if (!ck.expect(ok, "cycle " + std::to_string(cycle) + " all_gather " + str(r))) return 1;
    } else if (!ck.expect(w.barrier(*g).ok(), "cycle " + std::to_string(cycle) + " barrier")) {
      return 1;
    }
  }
  return 0;
}

// The last rank dies (SIGKILL, no clean-up) after one good barrier; the others' next collective
// with it must fail with errc::timeout, and a group of the survivors must still work.
int scenario_dead(World& w, checker& ck) {
  std::vector<std::int32_t> all(static_cast<std::size_t>(w.size()));
  for (int r = 0; r < w.size(); ++r) all[static_cast<std::size_t>(r)] = r;
  auto g = w.form(all, 1);
  if (!ck.expect(g.ok() && w.barrier(*g).ok(), "barrier before the death")) return 1;
  if (w.rank() == w.size() - 1) std::raise(SIGKILL);
  std::vector<float> x(100, 1.0f), y(100);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = w.all_reduce(*g, dtype::f32, x.data(), y.data(), x.size());
  const auto waited = std::chrono::steady_clock::now() - t0;
  ck.expect(!r.ok() && r.err().code == errc::timeout, "collective with a dead member must time out, got " + str(r));
  ck.expect(waited < 10 * w.options().timeout, "timed out within bounds");
  all.pop_back();
  auto survivors = w.form(all, 2);
  auto b = w.all_reduce(*survivors, dtype::f32, x.data(), y.data(), x.size());
  ck.expect(b.ok() && y[0] == static_cast<float>(all.size()), "survivors still work after the timeout: " + str(b));
  return 0;
}

}  // namespace gfdit::coll::testing
