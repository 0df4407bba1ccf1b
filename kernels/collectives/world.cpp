#include "kernels/collectives/world.hpp"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>

#include "kernels/collectives/backend.hpp"

namespace gfdit::coll {

using detail::exchange_plan;

World::World(int rank, int size, world_options opts, std::unique_ptr<detail::backend> be)
    : rank_(rank), size_(size), opts_(opts), be_(std::move(be)) {}

World::~World() = default;

result<std::unique_ptr<World>> World::create(rendezvous& rv, const world_options& opts) {
  const int rank = rv.rank(), size = rv.size();
  if (size < 1 || size > max_world_size || rank < 0 || rank >= size)
    return make_error(errc::invalid_argument, "world: size must be 1..64 and rank in range");
  if (opts.channels < 1 || opts.channels > max_model_channels)
    return make_error(errc::invalid_argument, "world: channels must be 1..4");
  if (opts.buffer_bytes < 4096) return make_error(errc::invalid_argument, "world: buffer_bytes must be >= 4096");
  // Round 0: agree on the configuration and take rank 0's session nonce, which seeds every
  // signal tag (a restarted world never matches a stale cell of an earlier one).
  std::random_device rd;
  const std::uint64_t mine = (std::uint64_t{rd()} << 32) ^ rd();
  const std::string cfg = std::string(to_string(opts.backend)) + "/" + std::to_string(opts.channels) + "/" +
                          std::to_string(opts.buffer_bytes) + "/" + std::to_string(opts.ll_max_bytes);
  auto blobs = rv.all_gather(cfg + "#" + std::to_string(mine), opts.timeout);
  if (!blobs) return blobs.err();
  std::uint64_t nonce = 0;
  for (int r = 0; r < size; ++r) {
    const auto& b = (*blobs)[static_cast<std::size_t>(r)];
    const auto hash = b.find('#');
    if (hash == std::string::npos || b.substr(0, hash) != cfg)
      return make_error(errc::invalid_argument,
                        "world: rank " + std::to_string(r) + " asked for another configuration: " + b);
    if (r == 0) nonce = std::stoull(b.substr(hash + 1));
  }
  detail::backend_config bc;
  bc.rank = rank;
  bc.size = size;
  bc.channels = opts.channels;
  bc.buffer_bytes = opts.buffer_bytes;
  bc.timeout = opts.timeout;
  bc.device = opts.device;
  bc.defer_done = opts.defer_done;
  bc.pipeline_min_bytes = opts.pipeline_min_bytes;
  bc.pipeline_chunk = opts.pipeline_chunk;
  bc.ll_max_bytes = opts.ll_max_bytes;
  result<std::unique_ptr<detail::backend>> be = make_error(errc::invalid_argument, "world: unknown backend");
  switch (opts.backend) {
    case backend_kind::host:
      be = detail::make_host_backend(rv, bc, nonce);
      break;
    case backend_kind::cuda_ipc:
      be = detail::make_cuda_ipc_backend(rv, bc, nonce);
      break;
    case backend_kind::nccl:
      be = detail::make_nccl_backend(rv, bc, nonce);
      break;
  }
  if (!be) return be.err();
  return std::unique_ptr<World>(new World(rank, size, opts, std::move(*be)));
}

result<Group> World::form(std::span<const std::int32_t> members, std::uint64_t epoch, int channel) const noexcept {
  if (channel >= opts_.channels)
    return make_error(errc::invalid_argument, "world: channel beyond world_options::channels");
  return Group::make(members, epoch, channel, rank_, size_);
}

result<void> World::check_member(const Group& g) const noexcept {
  if (g.size() == 0) return make_error(errc::invalid_argument, "collective: empty group");
  if (!g.is_member() || g.member(g.self()) != rank_)
    return make_error(errc::state, "collective: this rank is not a member of the group");
  return {};
}

namespace {

exchange_plan base_plan(const Group& g) {
  exchange_plan p;
  p.channel = g.channel();
  p.group_id = g.id();
  p.epoch = g.epoch();
  p.n = g.size();
  p.me = g.self();
  for (int j = 0; j < g.size(); ++j) p.ranks[static_cast<std::size_t>(j)] = g.member(j);
  return p;
}

const std::byte* at(const void* p, std::size_t off) { return static_cast<const std::byte*>(p) + off; }
std::byte* at(void* p, std::size_t off) { return static_cast<std::byte*>(p) + off; }

}  // namespace

result<void> World::run(exchange_plan& plan, std::size_t max_segment, stream_ref s) {
  const std::size_t cap = be_->capacity();
  const auto n = static_cast<std::size_t>(plan.n);
  plan.max_segment = max_segment;
  if (max_segment == 0 || max_segment <= cap / n) return be_->exchange(plan, s);
  // Every participant derives the same rounds from (max_segment, n, capacity).
  const std::size_t chunk = (cap / n) / 256 * 256;
  if (chunk == 0) return make_error(errc::too_large, "collective: group too large for buffer_bytes");
  const std::size_t rounds = (max_segment + chunk - 1) / chunk;
  for (std::size_t r = 0; r < rounds; ++r) {
    exchange_plan p = plan;
    p.max_segment = chunk;
    const std::size_t off = r * chunk;
    for (std::size_t j = 0; j < n; ++j) {
      auto& x = p.x[j];
      const auto& o = plan.x[j];
      const std::size_t sb = o.send_bytes > off ? std::min(chunk, o.send_bytes - off) : 0;
      const std::size_t rb = o.recv_bytes > off ? std::min(chunk, o.recv_bytes - off) : 0;
      x.send = sb ? at(o.send, off) : nullptr;
      x.send_bytes = sb;
      x.recv = rb ? at(o.recv, off) : nullptr;
      x.recv_bytes = rb;
    }
    if (auto r2 = be_->exchange(p, s); !r2) return r2;
  }
  return {};
}

result<void> World::all_to_all(const Group& g, const void* send, void* recv, std::size_t bytes, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  auto p = base_plan(g);
  for (int j = 0; j < g.size(); ++j) {
    const auto off = static_cast<std::size_t>(j) * bytes;
    p.x[static_cast<std::size_t>(j)] = {at(send, off), bytes, at(recv, off), bytes};
  }
  return run(p, bytes, s);
}

result<void> World::all_to_all_v(const Group& g, const void* send, std::span<const std::size_t> send_bytes,
                                 std::span<const std::size_t> send_offsets, void* recv,
                                 std::span<const std::size_t> recv_bytes, std::span<const std::size_t> recv_offsets,
                                 stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  const auto n = static_cast<std::size_t>(g.size());
  if (send_bytes.size() != n || send_offsets.size() != n || recv_bytes.size() != n || recv_offsets.size() != n)
    return make_error(errc::invalid_argument, "all_to_all_v: spans must have group size");
  auto p = base_plan(g);
  for (std::size_t j = 0; j < n; ++j)
    p.x[j] = {at(send, send_offsets[j]), send_bytes[j], at(recv, recv_offsets[j]), recv_bytes[j]};
  return run(p, 0, s);
}

result<void> World::all_gather(const Group& g, const void* send, void* recv, std::size_t bytes, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  auto p = base_plan(g);
  for (int j = 0; j < g.size(); ++j)
    p.x[static_cast<std::size_t>(j)] = {send, bytes, at(recv, static_cast<std::size_t>(j) * bytes), bytes};
  return run(p, bytes, s);
}

result<void> World::gather(const Group& g, int root, const void* send, void* recv, std::size_t bytes, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  if (root < 0 || root >= g.size()) return make_error(errc::invalid_argument, "gather: bad root");
  auto p = base_plan(g);
  const auto rt = static_cast<std::size_t>(root);
  p.x[rt].send = send;
  p.x[rt].send_bytes = bytes;
  if (g.self() == root)
    for (int j = 0; j < g.size(); ++j) {
      p.x[static_cast<std::size_t>(j)].recv = at(recv, static_cast<std::size_t>(j) * bytes);
      p.x[static_cast<std::size_t>(j)].recv_bytes = bytes;
    }
  return run(p, bytes, s);
}

result<void> World::scatter(const Group& g, int root, const void* send, void* recv, std::size_t bytes, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  if (root < 0 || root >= g.size()) return make_error(errc::invalid_argument, "scatter: bad root");
  auto p = base_plan(g);
  const auto rt = static_cast<std::size_t>(root);
  if (g.self() == root)
    for (int j = 0; j < g.size(); ++j) {
      p.x[static_cast<std::size_t>(j)].send = at(send, static_cast<std::size_t>(j) * bytes);
      p.x[static_cast<std::size_t>(j)].send_bytes = bytes;
    }
  p.x[rt].recv = recv;
  p.x[rt].recv_bytes = bytes;
  return run(p, bytes, s);
}

namespace {
// A two-party plan inside group g: the pair in group order, so both sides build the same plan.
exchange_plan pair_plan(const Group& g, int peer) {
  exchange_plan p;
  p.channel = g.channel();
  p.group_id = g.id();
  p.epoch = g.epoch();
  p.n = 2;
  const int lo = std::min(g.self(), peer), hi = std::max(g.self(), peer);
  p.ranks[0] = g.member(lo);
  p.ranks[1] = g.member(hi);
  p.me = g.self() == lo ? 0 : 1;
  return p;
}
}  // namespace

result<void> World::send(const Group& g, int to, const void* buf, std::size_t bytes, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  if (to < 0 || to >= g.size() || to == g.self())
    return make_error(errc::invalid_argument, "send: peer must be another member");
  auto p = pair_plan(g, to);
  p.x[static_cast<std::size_t>(1 - p.me)].send = buf;
  p.x[static_cast<std::size_t>(1 - p.me)].send_bytes = bytes;
  return run(p, bytes, s);
}

result<void> World::recv(const Group& g, int from, void* buf, std::size_t bytes, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  if (from < 0 || from >= g.size() || from == g.self())
    return make_error(errc::invalid_argument, "recv: peer must be another member");
  auto p = pair_plan(g, from);
  p.x[static_cast<std::size_t>(1 - p.me)].recv = buf;
  p.x[static_cast<std::size_t>(1 - p.me)].recv_bytes = bytes;
  return run(p, bytes, s);
}

result<void> World::barrier(const Group& g, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  auto p = base_plan(g);
  p.barrier = true;
  return run(p, 0, s);
}

result<void> World::all_reduce(const Group& g, dtype t, const void* send, void* recv, std::size_t count, stream_ref s) {
  if (auto c = check_member(g); !c) return c;
  const auto n = static_cast<std::size_t>(g.size());
  const std::size_t elt = size_of(t);
  void* scratch = be_->scratch(g.channel());
  if (!scratch) return make_error(errc::state, "all_reduce: no scratch on this channel");
  // A piece: reduce-scatter into scratch (n rows of my slice), sum the rows in member order,
  // all_gather the sums. Each element is summed by exactly one member, in member order.
  std::size_t piece = std::min(be_->capacity(), opts_.buffer_bytes) / elt / n * n;
  if (piece == 0) return make_error(errc::too_large, "all_reduce: group too large for buffer_bytes");
  const auto me = static_cast<std::size_t>(g.self());
  for (std::size_t e0 = 0; e0 < count; e0 += piece) {
    const std::size_t c = std::min(piece, count - e0);
    const auto ci = static_cast<std::int64_t>(c);
    const int ni = static_cast<int>(n);
    auto sb = [&](std::size_t j) { return static_cast<std::size_t>(shard_begin(ci, ni, static_cast<int>(j))); };
    auto sr = [&](std::size_t j) { return static_cast<std::size_t>(shard_rows(ci, ni, static_cast<int>(j))); };
    const std::size_t mine = sr(me);
    const std::size_t max_seg = (c + n - 1) / n * elt;
    auto p = base_plan(g);
    for (std::size_t j = 0; j < n; ++j)
      p.x[j] = {at(send, (e0 + sb(j)) * elt), sr(j) * elt, at(scratch, j * mine * elt), mine * elt};
    if (auto r = run(p, max_seg, s); !r) return r;
    void* out = at(recv, (e0 + sb(me)) * elt);
    if (auto r = be_->reduce_rows(t, scratch, g.size(), mine, out, s); !r) return r;
    auto q = base_plan(g);
    for (std::size_t j = 0; j < n; ++j) q.x[j] = {out, mine * elt, at(recv, (e0 + sb(j)) * elt), sr(j) * elt};
    if (auto r = run(q, max_seg, s); !r) return r;
  }
  return {};
}

result<void> World::reshard(const Group& from, const Group& to, token_layout layout, const void* src, void* dst,
                            stream_ref s) {
  if (from.size() == 0 || to.size() == 0) return make_error(errc::invalid_argument, "reshard: empty group");
  if (!from.contains(rank_) && !to.contains(rank_)) return {};
  // Participants: from's members in order, then to's members not in from, in order. Every
  // participant derives the same list, tag and plan from the two groups alone.
  exchange_plan p;
  p.channel = opts_.channels;  // the reshard channel
  p.group_id = splitmix64(from.id() ^ splitmix64(to.id()));
  p.epoch = splitmix64(from.epoch() ^ splitmix64(to.epoch() + 0x5245534841524400ull));
  int n = 0;
  for (auto r : from.members()) p.ranks[static_cast<std::size_t>(n++)] = r;
  for (auto r : to.members())
    if (!from.contains(r)) p.ranks[static_cast<std::size_t>(n++)] = r;
  p.n = n;
  for (int j = 0; j < n; ++j)
    if (p.ranks[static_cast<std::size_t>(j)] == rank_) p.me = j;
  const std::int64_t T = layout.tokens;
  const std::size_t row = layout.row_bytes;
  const int na = from.size(), nb = to.size();
  const int ia = from.index_of(rank_), ib = to.index_of(rank_);
  for (int j = 0; j < n; ++j) {
    const auto r = p.ranks[static_cast<std::size_t>(j)];
    auto& x = p.x[static_cast<std::size_t>(j)];
    const int ja = from.index_of(r), jb = to.index_of(r);
    if (ia >= 0 && jb >= 0) {  // my old rows that participant j owns in the new layout
      const auto a0 = shard_begin(T, na, ia), a1 = shard_begin(T, na, ia + 1);
      const auto lo = std::max(a0, shard_begin(T, nb, jb)), hi = std::min(a1, shard_begin(T, nb, jb + 1));
      if (hi > lo) {
        x.send = at(src, static_cast<std::size_t>(lo - a0) * row);
        x.send_bytes = static_cast<std::size_t>(hi - lo) * row;
      }
    }
    if (ib >= 0 && ja >= 0) {  // my new rows that participant j owned in the old layout
      const auto b0 = shard_begin(T, nb, ib), b1 = shard_begin(T, nb, ib + 1);
      const auto lo = std::max(b0, shard_begin(T, na, ja)), hi = std::min(b1, shard_begin(T, na, ja + 1));
      if (hi > lo) {
        x.recv = at(dst, static_cast<std::size_t>(lo - b0) * row);
        x.recv_bytes = static_cast<std::size_t>(hi - lo) * row;
      }
    }
  }
  // Largest edge, known to all: overlaps of shard ranges are at most the larger shard.
  std::size_t max_seg = 0;
  for (int i = 0; i < na; ++i)
    for (int j = 0; j < nb; ++j) {
      const auto lo = std::max(shard_begin(T, na, i), shard_begin(T, nb, j));
      const auto hi = std::min(shard_begin(T, na, i + 1), shard_begin(T, nb, j + 1));
      if (hi > lo) max_seg = std::max(max_seg, static_cast<std::size_t>(hi - lo) * row);
    }
  return run(p, max_seg, s);
}

result<void> World::synchronize(stream_ref s) { return be_->synchronize(s); }

void* World::symmetric(int channel) noexcept {
  if (channel < 0 || channel >= opts_.channels) return nullptr;
  return be_->symmetric(channel);
}

void* World::peer_symmetric(int channel, std::int32_t rank) noexcept {
  if (channel < 0 || channel >= opts_.channels || rank < 0 || rank >= size_) return nullptr;
  return be_->peer_symmetric(channel, rank);
}

}  // namespace gfdit::coll
