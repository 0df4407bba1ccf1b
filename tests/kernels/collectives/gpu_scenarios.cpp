// GPU scenario, one process per GPU: our collectives (cuda-ipc or nccl backend) against NCCL's
// own collectives on a separate communicator, compared bitwise; plus subgroups and reshard
// against host-computed expectations, and replays of a captured CUDA graph.
#include <bit>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <nccl.h>

#include "kernels/collectives/world.hpp"
#include "tests/kernels/collectives/worker_common.hpp"

namespace gfdit::coll::testing {
namespace {

#define CK_CUDA(x)                                                  \
  do {                                                              \
    const cudaError_t e_ = (x);                                     \
    if (e_ != cudaSuccess) {                                        \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); \
      return 50;                                                    \
    }                                                               \
  } while (0)
#define CK_NCCL(x)                                                  \
  do {                                                              \
    const ncclResult_t e_ = (x);                                    \
    if (e_ != ncclSuccess) {                                        \
      std::fprintf(stderr, "%s: %s\n", #x, ncclGetErrorString(e_)); \
      return 51;                                                    \
    }                                                               \
  } while (0)

struct dbuf {
  void* p = nullptr;
  std::size_t n = 0;
  explicit dbuf(std::size_t bytes) : n(bytes) {
    cudaMalloc(&p, bytes ? bytes : 1);
    cudaMemset(p, 0, bytes ? bytes : 1);
  }
  ~dbuf() { cudaFree(p); }
  dbuf(const dbuf&) = delete;
  std::vector<std::uint8_t> host() const {
    std::vector<std::uint8_t> v(n);
    cudaMemcpy(v.data(), p, n, cudaMemcpyDeviceToHost);
    return v;
  }
  // Synchronous for every stream: a pageable cudaMemcpy may return before the device has the bytes,
  // and the collectives run on a non-blocking stream.
  void upload(const std::vector<std::uint8_t>& v) {
    cudaMemcpy(p, v.data(), v.size(), cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
  }
};

std::string str(const result<void>& r) { return r ? "ok" : std::string(to_string(r.err().code)) + ": " + r.err().what; }

}  // namespace

int scenario_gpu(World& w, rendezvous& rv, checker& ck) {
  const int rank = w.rank(), size = w.size();
  const char* be = w.kind() == backend_kind::cuda_ipc ? "cuda-ipc" : "nccl";
  // The reference: NCCL's native collectives on a communicator of their own.
  ncclUniqueId id{};
  if (rank == 0) CK_NCCL(ncclGetUniqueId(&id));
  auto ids = rv.all_gather(std::string(reinterpret_cast<const char*>(&id), sizeof id), std::chrono::seconds(60));
  if (!ids) return 52;
  std::memcpy(&id, (*ids)[0].data(), sizeof id);
  ncclComm_t ref = nullptr;
  CK_NCCL(ncclCommInitRank(&ref, size, id, rank));
  cudaStream_t st;
  CK_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  const stream_ref s{st};
  std::vector<std::int32_t> all(static_cast<std::size_t>(size)), rev;
  for (int r = 0; r < size; ++r) all[static_cast<std::size_t>(r)] = r;
  rev.assign(all.rbegin(), all.rend());
  auto g = w.form(all, 1), gr = w.form(rev, 2);
  if (!ck.expect(g.ok() && gr.ok(), "form")) return 1;
  auto same = [&](const dbuf& a, const dbuf& b, const std::string& what) {
    ck.expect(a.host() == b.host(), std::string(be) + " " + what + ": differs from NCCL");
  };
  // 12345: odd sizes and unaligned segments (byte-wise tails on every path).
  for (std::size_t bytes :
       {std::size_t{12345}, std::size_t{64} << 10, (std::size_t{1} << 20) + 48, std::size_t{6} << 20}) {
    const std::string sz = " bytes=" + std::to_string(bytes);
    const std::size_t total = bytes * static_cast<std::size_t>(size);
    dbuf in(total), mine(total), theirs(total), one(bytes);
    std::vector<std::uint8_t> h;
    for (int j = 0; j < size; ++j) {
      auto b = bytes_of(bytes, rank, j, bytes);
      h.insert(h.end(), b.begin(), b.end());
    }
    in.upload(h);
    one.upload(bytes_of(bytes + 1, rank, 0, bytes));
    auto r = w.all_to_all(*g, in.p, mine.p, bytes, s);
    CK_NCCL(ncclAlltoAll(in.p, theirs.p, bytes, ncclUint8, ref, st));
    ck.expect(r.ok() && w.synchronize(s).ok(), "all_to_all " + str(r));
    CK_CUDA(cudaStreamSynchronize(st));
    same(mine, theirs, "all_to_all" + sz);
    r = w.all_gather(*g, one.p, mine.p, bytes, s);
    CK_NCCL(ncclAllGather(one.p, theirs.p, bytes, ncclUint8, ref, st));
    ck.expect(r.ok() && w.synchronize(s).ok(), "all_gather " + str(r));
    CK_CUDA(cudaStreamSynchronize(st));
    same(mine, theirs, "all_gather" + sz);
    if (size >= 2) {
      CK_CUDA(cudaMemset(mine.p, 0, total));
      CK_CUDA(cudaMemset(theirs.p, 0, total));
      CK_CUDA(cudaDeviceSynchronize());
      r = w.gather(*g, 1, one.p, mine.p, bytes, s);
      CK_NCCL(ncclGather(one.p, theirs.p, bytes, ncclUint8, 1, ref, st));
      ck.expect(r.ok() && w.synchronize(s).ok(), "gather " + str(r));
      CK_CUDA(cudaStreamSynchronize(st));
      same(mine, theirs, "gather" + sz);
      dbuf a(bytes), b(bytes);
      r = w.scatter(*g, 0, in.p, a.p, bytes, s);
      CK_NCCL(ncclScatter(in.p, b.p, bytes, ncclUint8, 0, ref, st));
      ck.expect(r.ok() && w.synchronize(s).ok(), "scatter " + str(r));
      CK_CUDA(cudaStreamSynchronize(st));
      same(a, b, "scatter" + sz);
      if (rank <= 1) {  // send/recv 0 -> 1, ours then NCCL's
        if (rank == 0) {
          r = w.send(*g, 1, one.p, bytes, s);
          CK_NCCL(ncclSend(one.p, bytes, ncclUint8, 1, ref, st));
        } else {
          r = w.recv(*g, 0, a.p, bytes, s);
          CK_NCCL(ncclRecv(b.p, bytes, ncclUint8, 0, ref, st));
        }
        ck.expect(r.ok() && w.synchronize(s).ok(), "send/recv " + str(r));
        CK_CUDA(cudaStreamSynchronize(st));
        if (rank == 1) same(a, b, "send/recv" + sz);
      }
    }
    if (void* sym = w.symmetric(0); sym && bytes * static_cast<std::size_t>(size) <= (std::size_t{4} << 20)) {
      CK_CUDA(cudaMemcpy(sym, in.p, total, cudaMemcpyDeviceToDevice));  // published without staging
      CK_CUDA(cudaDeviceSynchronize());
      r = w.all_to_all(*g, sym, mine.p, bytes, s);
      CK_NCCL(ncclAlltoAll(in.p, theirs.p, bytes, ncclUint8, ref, st));
      ck.expect(r.ok() && w.synchronize(s).ok(), "all_to_all symmetric " + str(r));
      CK_CUDA(cudaStreamSynchronize(st));
      same(mine, theirs, "all_to_all from the symmetric buffer" + sz);
    }
    {  // the reversed group: all_gather in member order
      r = w.all_gather(*gr, one.p, mine.p, bytes, s);
      ck.expect(r.ok() && w.synchronize(s).ok(), "all_gather reversed " + str(r));
      std::vector<std::uint8_t> want;
      for (auto m : rev) {
        auto b = bytes_of(bytes + 1, m, 0, bytes);
        want.insert(want.end(), b.begin(), b.end());
      }
      ck.expect(mine.host() == want, std::string(be) + " all_gather on the reversed group" + sz);
    }
    {  // deterministic all_reduce (f32 and bf16): member-order sum; equal to NCCL's on 2 ranks
      const std::size_t count = bytes / 4;
      std::vector<float> x(count), want(count);
      auto val = [&](int j, std::size_t i) {
        return (static_cast<float>(pattern(bytes + 2, j, 0, i)) - 127.5f) * 0.0123457f +
               1e-4f * static_cast<float>(pattern(bytes + 3, j, 0, i));
      };
      for (std::size_t i = 0; i < count; ++i) {
        x[i] = val(rank, i);
        float acc = val(0, i);
        for (int j = 1; j < size; ++j) acc += val(j, i);
        want[i] = acc;
      }
      dbuf xi(count * 4), a(count * 4), b(count * 4);
      CK_CUDA(cudaMemcpy(xi.p, x.data(), count * 4, cudaMemcpyHostToDevice));
      CK_CUDA(cudaDeviceSynchronize());
      r = w.all_reduce(*g, dtype::f32, xi.p, a.p, count, s);
      CK_NCCL(ncclAllReduce(xi.p, b.p, count, ncclFloat32, ncclSum, ref, st));
      ck.expect(r.ok() && w.synchronize(s).ok(), "all_reduce " + str(r));
      CK_CUDA(cudaStreamSynchronize(st));
      std::vector<float> got(count);
      CK_CUDA(cudaMemcpy(got.data(), a.p, count * 4, cudaMemcpyDeviceToHost));
      ck.expect(std::memcmp(got.data(), want.data(), count * 4) == 0,
                std::string(be) + " all_reduce f32 vs member-order sum" + sz);
      if (size == 2) same(a, b, "all_reduce f32" + sz);
      const std::size_t hc = bytes / 2;
      dbuf hi(hc * 2), ha(hc * 2), hb(hc * 2);
      hi.upload(bytes_of(bytes + 4, rank, 0, hc * 2));
      r = w.all_reduce(*g, dtype::bf16, hi.p, ha.p, hc, s);
      CK_NCCL(ncclAllReduce(hi.p, hb.p, hc, ncclBfloat16, ncclSum, ref, st));
      ck.expect(r.ok() && w.synchronize(s).ok(), "all_reduce bf16 " + str(r));
      CK_CUDA(cudaStreamSynchronize(st));
      if (size == 2) same(ha, hb, "all_reduce bf16" + sz);
    }
    {  // reshard {0} -> world -> reversed world, checked against the global tensor
      const token_layout L{static_cast<std::int64_t>(bytes / 96), 96};
      auto g0 = w.form(std::span<const std::int32_t>(all.data(), 1), 3);
      std::vector<std::uint8_t> global;
      for (std::int64_t t = 0; t < L.tokens; ++t) {
        auto b = bytes_of(bytes + 5, t, 0, L.row_bytes);
        global.insert(global.end(), b.begin(), b.end());
      }
      dbuf full(global.size()), shard(global.size()), back(global.size());
      if (rank == 0) full.upload(global);
      r = w.reshard(*g0, *g, L, full.p, shard.p, s);
      ck.expect(r.ok() && w.synchronize(s).ok(), "reshard {0}->world " + str(r));
      r = w.reshard(*g, *gr, L, shard.p, back.p, s);
      ck.expect(r.ok() && w.synchronize(s).ok(), "reshard world->reversed " + str(r));
      const int ib = gr->self();
      const auto b0 = static_cast<std::size_t>(shard_begin(L.tokens, size, ib)) * L.row_bytes;
      const auto nb = static_cast<std::size_t>(shard_rows(L.tokens, size, ib)) * L.row_bytes;
      auto got = back.host();
      ck.expect(
          std::equal(global.begin() + static_cast<long>(b0), global.begin() + static_cast<long>(b0 + nb), got.begin()),
          std::string(be) + " reshard chain" + sz);
    }
  }
  if (w.kind() == backend_kind::cuda_ipc) {  // capture once, replay with new inputs
    const std::size_t bytes = 1 << 20;
    dbuf in(bytes), mine(bytes * static_cast<std::size_t>(size)), theirs(bytes * static_cast<std::size_t>(size));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK_CUDA(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    auto r = w.all_gather(*g, in.p, mine.p, bytes, s);
    CK_CUDA(cudaStreamEndCapture(st, &graph));
    ck.expect(r.ok(), "capture all_gather " + str(r));
    CK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    for (int rep = 0; rep < 3; ++rep) {
      in.upload(bytes_of(777 + rep, rank, 0, bytes));
      CK_CUDA(cudaGraphLaunch(exec, st));
      CK_NCCL(ncclAllGather(in.p, theirs.p, bytes, ncclUint8, ref, st));
      ck.expect(w.synchronize(s).ok(), "graph replay");
      same(mine, theirs, "graph replay " + std::to_string(rep));
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  ck.expect(w.barrier(*g, s).ok() && w.synchronize(s).ok(), "final barrier");
  ncclCommDestroy(ref);
  cudaStreamDestroy(st);
  return 0;
}

}  // namespace gfdit::coll::testing
