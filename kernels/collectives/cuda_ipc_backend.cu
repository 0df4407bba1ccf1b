// cuda-ipc backend: one node, one process per GPU. At creation every rank allocates, per
// channel, one region = signal header + data buffer + LL inbox, and maps every peer's region once
// through cudaIpc handles (exchanged over the rendezvous). An exchange is then one kernel, of one
// of two protocols. When every participant knows that a rank pushes at most ll_max_bytes, the LL
// kernel (below) pushes the data with the flags in line into the receivers' inboxes. Otherwise
// the pull kernel:
//   1. stage: the grid copies my outgoing segments into my data buffer (skipped when the send
//      buffer already lies there: World::symmetric), then meets at a grid barrier (the grid has
//      at most one block per SM, so all its blocks are resident);
//   2. block 0 writes my descriptors and signals `ready` to each peer (st.release.sys); every
//      block waits for the peers' `ready` (ld.acquire.sys) and pulls its share of each peer's
//      segment straight into the receive buffer;
//   3. the last block to finish signals `done` and waits for the peers' `done`, so no buffer is
//      overwritten while a peer still reads it.
// Signal values are tags of (session, group, epoch, per-edge sequence). The sequence lives in
// device memory and is advanced by the kernel itself, so a CUDA graph that captured an exchange
// produces fresh tags on every replay. Spins are bounded by %globaltimer: a dead peer sets an
// error flag (device and mapped host memory) instead of hanging; synchronize() reports it.
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/gpu_check.hpp"
#include "kernels/collectives/backend.hpp"
#include "kernels/collectives/cuda_kernels.hpp"

namespace gfdit::coll::detail {
namespace {

constexpr int max_peers = 32;   // participants of one GPU exchange (a node has at most 8-16 GPUs)
constexpr int max_chunks = 64;  // pipeline chunks of one exchange
using u64 = unsigned long long;

struct gpu_header {
  u64 ready[max_world_size];    // [src rank], written by src: descriptors valid (and data, unless chunked)
  u64 done[max_world_size];     // [src rank]: src finished reading my buffer
  u64 pub_off[max_world_size];  // [dst rank]: what I publish for dst, offset in my data area
  u64 pub_bytes[max_world_size];
  u64 pub_chunk[max_world_size];          // [dst rank]: chunk size when staged in chunks, else 0
  u64 chunk[max_world_size][max_chunks];  // [src rank][k]: src's chunk k is staged
  u64 ll_ack[max_world_size][2];          // [dst rank][slot], written by dst: it consumed my LL message there
};
constexpr std::size_t header_bytes = 64 * 1024;
static_assert(sizeof(gpu_header) <= header_bytes);

struct local_state {
  u64 seq[max_world_size];            // exchanges with each peer on this channel so far
  u64 pending[max_world_size];        // deferred `done` still expected from each peer (0: none)
  unsigned counter;                   // blocks finished in the running kernel
  unsigned arrive;                    // blocks done staging (grid barrier)
  unsigned error;                     // sticky: 1 timeout, 2 size mismatch
  u64 ll_pending[max_world_size][2];  // [peer][slot]: ack (tag) that frees my cell in its inbox
};

struct xparams {
  int n, me;
  int ranks[max_peers];
  gpu_header* hdr[max_peers];
  const char* data[max_peers];
  u64 pub_off[max_peers], pub_bytes[max_peers];
  char* recv[max_peers];
  u64 recv_bytes[max_peers];
  const char* stage_src[max_peers];  // staged by the kernel into my data area at pub_off
  const char* self_src;
  u64 nonce, gid, epoch, timeout_ns;
  local_state* st;
  unsigned* host_err;
  int staged;       // some segment is staged
  int defer;        // leave `done` pending for the next exchange
  int stagers;      // chunked staging: blocks [0, stagers) stage, the rest pull
  int self_blocks;  // pulling blocks [stagers, stagers + self_blocks) copy my own segment
  u64 chunk;        // chunk bytes when chunked, else 0
  u64 split;        // data area: [0, split) symmetric (zero-copy), [split, 2 split) staging
  u64 stage_hi;     // staged bytes end at split + ...
};

__device__ __forceinline__ void st_release_sys(u64* p, u64 v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ u64 ld_acquire_sys(const u64* p) {
  u64 v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ u64 globaltimer() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ bool wait_eq(const u64* p, u64 v, u64 timeout_ns) {
  if (ld_acquire_sys(p) == v) return true;
  const u64 t0 = globaltimer();
  for (;;) {
    for (int i = 0; i < 32; ++i)
      if (ld_acquire_sys(p) == v) return true;
    if (globaltimer() - t0 > timeout_ns) return false;
  }
}

__device__ __forceinline__ u64 mix64(u64 x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ u64 device_tag(u64 nonce, u64 gid, u64 epoch, u64 seq) {
  return mix64(mix64(mix64(nonce ^ gid) ^ epoch) ^ seq) | 1u;
}
__device__ __forceinline__ u64 chunk_tag(u64 tag, int k) { return mix64(tag ^ (0x43484e4bull + k)) | 1u; }

// Copy strided over `count` workers (blocks) of which this block is `index`: 16-byte vectors
// when aligned, 4 loads in flight per thread; .cg loads, since peer data must not be cached in L1.
__device__ void copy_range(char* __restrict__ dst, const char* __restrict__ src, u64 len, u64 index, u64 count) {
  if (len == 0 || count == 0) return;
  const u64 tid = index * blockDim.x + threadIdx.x;
  const u64 stride = count * blockDim.x;
  if (((reinterpret_cast<u64>(dst) | reinterpret_cast<u64>(src)) & 15u) == 0) {
    const u64 nv = len / 16;
    const int4* s4 = reinterpret_cast<const int4*>(src);
    int4* d4 = reinterpret_cast<int4*>(dst);
    u64 i = tid;
    for (; i + 3 * stride < nv; i += 4 * stride) {
      const int4 a = __ldcg(s4 + i), b = __ldcg(s4 + i + stride), c = __ldcg(s4 + i + 2 * stride),
                 d = __ldcg(s4 + i + 3 * stride);
      d4[i] = a;
      d4[i + stride] = b;
      d4[i + 2 * stride] = c;
      d4[i + 3 * stride] = d;
    }
    for (; i < nv; i += stride) d4[i] = __ldcg(s4 + i);
    for (u64 k = nv * 16 + tid; k < len; k += stride) dst[k] = src[k];
  } else {
    for (u64 k = tid; k < len; k += stride) dst[k] = src[k];
  }
}

// Stages the part of my outgoing segments that falls in [lo, hi) of my data area.
__device__ void stage_range(const xparams& p, char* area, u64 lo, u64 hi, u64 index, u64 count) {
  for (int j = 0; j < p.n; ++j) {
    if (!p.stage_src[j]) continue;
    const u64 a = p.pub_off[j], b = a + p.pub_bytes[j];
    const u64 x = a > lo ? a : lo, y = b < hi ? b : hi;
    if (y > x) copy_range(area + x, p.stage_src[j] + (x - a), y - x, index, count);
  }
}

// The end of an exchange kernel, for every thread: each block adds its error (1 when `*fail`,
// else thread 0's `mismatch`) and counts itself done; false in all but the last block to
// finish, which returns true with `*fail` set when any block failed (every block's reads of the
// peers are then over).
__device__ bool last_block_done(local_state* st, int* fail, unsigned mismatch, int* last) {
  __syncthreads();
  if (threadIdx.x == 0) {
    if (const unsigned err = *fail ? 1u : mismatch) atomicOr(&st->error, err);
    __threadfence();
    *last = atomicAdd(&st->counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!*last) return false;
  __threadfence();
  if (threadIdx.x == 0) *fail = *reinterpret_cast<volatile unsigned*>(&st->error) != 0;
  __syncthreads();
  return true;
}

// The last block, once its flags are out: ready the counters for the next kernel on the channel
// and tell the host about an error (a plain store: atomics on mapped host memory are not
// portable over PCIe).
__device__ void reset_and_report(local_state* st, unsigned* host_err) {
  if (threadIdx.x != 0) return;
  st->counter = 0;
  st->arrive = 0;
  const unsigned e = *reinterpret_cast<volatile unsigned*>(&st->error);
  if (e) *reinterpret_cast<volatile unsigned*>(host_err) = e;
}

__global__ void __launch_bounds__(512) exchange_kernel(const __grid_constant__ xparams p) {
  __shared__ u64 tags[max_peers];
  __shared__ u64 src_off[max_peers];
  __shared__ u64 src_len[max_peers];
  __shared__ u64 src_chunk[max_peers];
  __shared__ int fail;
  __shared__ int last;
  const int t = threadIdx.x;
  const u64 b = blockIdx.x, nb = gridDim.x;
  gpu_header* mine = p.hdr[p.me];
  char* area = const_cast<char*>(p.data[p.me]);
  const int my_rank = p.ranks[p.me];
  const bool edge = t < p.n && t != p.me;
  if (t == 0) fail = *reinterpret_cast<volatile unsigned*>(&p.st->error) != 0;
  if (edge) tags[t] = device_tag(p.nonce, p.gid, p.epoch, p.st->seq[p.ranks[t]] + 1);
  __syncthreads();
  // 0. The previous exchange on this channel may have left `done` pending: no peer may still
  //    read my buffer or descriptors when I overwrite them.
  if (!fail && t < max_world_size) {
    const u64 want = p.st->pending[t];
    if (want && !wait_eq(&mine->done[t], want, p.timeout_ns)) fail = 1;
  }
  __syncthreads();
  const bool chunked = p.chunk != 0;
  if (!fail && b == 0 && edge) {
    mine->pub_off[p.ranks[t]] = p.pub_off[t];
    mine->pub_bytes[p.ranks[t]] = p.pub_bytes[t];
    mine->pub_chunk[p.ranks[t]] = p.chunk;
  }
  if (p.staged && !chunked) {  // 1. stage everything, then a grid barrier
    if (!fail) stage_range(p, area, p.split, p.stage_hi, b, nb);
    __syncthreads();
    if (t == 0) {
      __threadfence_system();  // staged bytes visible to the peers before block 0 signals
      atomicAdd(&p.st->arrive, 1u);
      while (*reinterpret_cast<volatile unsigned*>(&p.st->arrive) < nb) {
      }
    }
    __syncthreads();
  }
  if (!fail && b == 0 && edge) st_release_sys(&p.hdr[t]->ready[my_rank], tags[t]);  // after the descriptors
  unsigned mismatch = 0;
  if (chunked && b < static_cast<u64>(p.stagers)) {
    // 2a. Stager: chunk k of my staged range, then tell every peer it is there.
    const u64 end = (p.stage_hi - p.split + p.chunk - 1) / p.chunk;
    for (u64 k = b; k < end && !fail; k += p.stagers) {
      const u64 lo = p.split + k * p.chunk;
      const u64 hi = lo + p.chunk < p.stage_hi ? lo + p.chunk : p.stage_hi;
      stage_range(p, area, lo, hi, 0, 1);
      __syncthreads();
      if (t == 0) __threadfence_system();
      __syncthreads();
      if (edge) st_release_sys(&p.hdr[t]->chunk[my_rank][k], chunk_tag(tags[t], static_cast<int>(k)));
    }
  } else if (!fail) {
    // 2b. Puller: my own segment first (needs no peer), on its own blocks when there are enough.
    const u64 pb = b - p.stagers, np = nb - p.stagers;
    const u64 ns = static_cast<u64>(p.self_blocks);
    const u64 self_want = p.recv_bytes[p.me];
    if (self_want) {
      if (p.pub_bytes[p.me] != self_want) mismatch = 2;
      const u64 len = self_want < p.pub_bytes[p.me] ? self_want : p.pub_bytes[p.me];
      if (ns == 0)
        copy_range(p.recv[p.me], p.self_src, len, pb, np);
      else if (pb < ns)
        copy_range(p.recv[p.me], p.self_src, len, pb, ns);
    }
    const bool remote = ns == 0 || pb >= ns;
    const u64 ri = ns == 0 ? pb : pb - ns, rn = ns == 0 ? np : np - ns;
    if (remote) {
      if (edge) {
        if (!wait_eq(&mine->ready[p.ranks[t]], tags[t], p.timeout_ns)) {
          fail = 1;
        } else {
          src_off[t] = *reinterpret_cast<volatile u64*>(&p.hdr[t]->pub_off[my_rank]);
          src_len[t] = *reinterpret_cast<volatile u64*>(&p.hdr[t]->pub_bytes[my_rank]);
          src_chunk[t] = *reinterpret_cast<volatile u64*>(&p.hdr[t]->pub_chunk[my_rank]);
        }
      }
      __syncthreads();
      // Rank me reads me+1 first, then me+2, ...: at each moment every GPU serves one reader.
      // (All starting at participant 0 made it serve n-1 readers: ~0.55x NCCL on 4 GPUs.)
      for (int s = 1; s < p.n && !fail; ++s) {
        const int j = (p.me + s) % p.n;
        const u64 want = p.recv_bytes[j];
        if (!want) continue;
        if (src_len[j] != want) mismatch = 2;
        const u64 len = want < src_len[j] ? want : src_len[j];
        const u64 c = src_chunk[j];
        if (c == 0) {
          copy_range(p.recv[j], p.data[j] + src_off[j], len, ri, rn);
          continue;
        }
        // The peer stages in chunks: pull each chunk of my segment once it is there.
        for (u64 x = src_off[j]; x < src_off[j] + len && !fail;) {
          const u64 k = (x - p.split) / c;  // every rank has the same split (buffer_bytes)
          const u64 ce = p.split + (k + 1) * c;
          const u64 y = ce < src_off[j] + len ? ce : src_off[j] + len;
          if (t == 0 && !wait_eq(&mine->chunk[p.ranks[j]][k], chunk_tag(tags[j], static_cast<int>(k)), p.timeout_ns))
            fail = 1;
          __syncthreads();
          if (!fail) copy_range(p.recv[j] + (x - src_off[j]), p.data[j] + x, y - x, ri, rn);
          x = y;
        }
      }
    }
  }
  if (!last_block_done(p.st, &fail, mismatch, &last)) return;
  // 3. Every block has finished reading the peers: release them; wait for their release now,
  //    or leave it pending for the next exchange on this channel.
  if (!fail && edge) {
    st_release_sys(&p.hdr[t]->done[my_rank], tags[t]);
    if (!p.defer && !wait_eq(&mine->done[p.ranks[t]], tags[t], p.timeout_ns)) atomicOr(&p.st->error, 1u);
  }
  if (t < max_world_size) p.st->pending[t] = 0;
  __syncthreads();
  if (edge) {
    p.st->seq[p.ranks[t]] += 1;
    if (p.defer) p.st->pending[p.ranks[t]] = tags[t];
  }
  reset_and_report(p.st, p.host_err);
}

// ---- LL protocol: the sender pushes, the flag travels in line with the data ----
// Each 16-byte line carries 8 payload bytes as two 64-bit words {data32 | flag32 << 32}; an
// aligned 64-bit store is single-copy atomic, so a word whose flag matches holds its data. The
// receiver polls its own memory: no separate signal, no fence before it, no round trip. Every
// rank has, per channel, an inbox of two slots per peer; exchange k on an edge uses slot k & 1,
// and the sender waits (normally long satisfied) for the receiver's ack of the message that slot
// held before. Flag = low 32 bits of the edge sequence (never equal to an earlier message of the
// same cell for 2^32 exchanges); the cell's first line carries the full tag of (session, group,
// epoch, sequence), so a peer in another collective is an error, and the second the byte count.
struct llparams {
  int n, me;
  int ranks[max_peers];
  gpu_header* hdr[max_peers];  // every participant's header (acks land there)
  char* out[max_peers];        // slot 0 of my cell in participant j's inbox
  const char* in[max_peers];   // slot 0 of participant j's cell in my inbox
  const char* send[max_peers];
  u64 send_bytes[max_peers];
  char* recv[max_peers];
  u64 recv_bytes[max_peers];
  u64 slot_stride;  // bytes from slot 0 to slot 1 of a cell
  u64 nonce, gid, epoch, timeout_ns;
  local_state* st;
  unsigned* host_err;
};

constexpr int ll_header_lines = 2;  // full tag, byte count
constexpr int ll_batch = 4;         // lines in flight per thread

__device__ __forceinline__ void st_ll(char* p, u64 a, u64 b) {
  asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" ::"l"(p), "l"(a), "l"(b) : "memory");
}
__device__ __forceinline__ void ld_ll(const char* p, u64& a, u64& b) {
  asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];" : "=l"(a), "=l"(b) : "l"(p) : "memory");
}
__device__ __forceinline__ u64 ll_word(u64 d32, unsigned f) { return (d32 & 0xffffffffull) | (u64{f} << 32); }
__device__ __forceinline__ bool ll_ok(u64 a, u64 b, unsigned f) {
  return static_cast<unsigned>(a >> 32) == f && static_cast<unsigned>(b >> 32) == f;
}
// 8 payload bytes at offset o of a segment of len bytes (zero-padded at the tail).
__device__ __forceinline__ u64 load8(const char* src, u64 o, u64 len) {
  if (o + 8 <= len && ((reinterpret_cast<u64>(src) + o) & 7u) == 0) return *reinterpret_cast<const u64*>(src + o);
  u64 v = 0;
  for (u64 k = 0; k < 8 && o + k < len; ++k) v |= u64{static_cast<unsigned char>(src[o + k])} << (8 * k);
  return v;
}
__device__ __forceinline__ void store8(char* dst, u64 o, u64 len, u64 v) {
  if (o + 8 <= len && ((reinterpret_cast<u64>(dst) + o) & 7u) == 0) {
    *reinterpret_cast<u64*>(dst + o) = v;
    return;
  }
  for (u64 k = 0; k < 8 && o + k < len; ++k) dst[o + k] = static_cast<char>(v >> (8 * k));
}
// Waits until both words of a line carry flag f; false on timeout or when the block failed.
__device__ bool ll_wait(const char* p, unsigned f, u64& a, u64& b, u64 timeout_ns, volatile int* fail) {
  ld_ll(p, a, b);
  if (ll_ok(a, b, f)) return true;
  const u64 t0 = globaltimer();
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      ld_ll(p, a, b);
      if (ll_ok(a, b, f)) return true;
    }
    if (*fail || globaltimer() - t0 > timeout_ns) return false;
  }
}

__global__ void __launch_bounds__(512) ll_kernel(const __grid_constant__ llparams p) {
  __shared__ u64 tags[max_peers];
  __shared__ unsigned flags[max_peers];
  __shared__ u64 slot_off[max_peers];
  __shared__ u64 len[max_peers];
  __shared__ int fail;
  __shared__ int mismatch;
  __shared__ int last;
  const int t = threadIdx.x;
  const u64 nb = gridDim.x, T = nb * blockDim.x, gt = blockIdx.x * blockDim.x + t;
  gpu_header* mine = p.hdr[p.me];
  const int my_rank = p.ranks[p.me];
  const bool edge = t < p.n && t != p.me;
  volatile int* vfail = &fail;  // set by any thread of the block
  if (t == 0) {
    fail = *reinterpret_cast<volatile unsigned*>(&p.st->error) != 0;
    mismatch = 0;
  }
  if (edge) {
    const u64 seq = p.st->seq[p.ranks[t]] + 1;
    tags[t] = device_tag(p.nonce, p.gid, p.epoch, seq);
    flags[t] = static_cast<unsigned>(seq);
    slot_off[t] = (seq & 1u) * p.slot_stride;
  }
  __syncthreads();
  // 1. My cell in each peer's inbox is free once the peer acked what it held (two exchanges ago).
  if (!fail && edge) {
    const u64 want = p.st->ll_pending[p.ranks[t]][slot_off[t] ? 1 : 0];
    if (want && !wait_eq(&mine->ll_ack[p.ranks[t]][slot_off[t] ? 1 : 0], want, p.timeout_ns)) fail = 1;
  }
  __syncthreads();
  if (!fail) {
    // 2. Push: header lines, then the payload, ll_batch lines in flight per thread.
    for (int s = 1; s < p.n; ++s) {  // to me+1 first: every GPU takes one sender at a time
      const int j = (p.me + s) % p.n;
      char* cell = p.out[j] + slot_off[j];
      const unsigned f = flags[j];
      const u64 bytes = p.send_bytes[j];
      if (gt == 0) {
        st_ll(cell, ll_word(tags[j], f), ll_word(tags[j] >> 32, f));
        st_ll(cell + 16, ll_word(bytes, f), ll_word(bytes >> 32, f));
      }
      char* lines = cell + 16 * ll_header_lines;
      const u64 L = (bytes + 7) / 8;
      for (u64 i = gt; i < L; i += ll_batch * T) {
        u64 v[ll_batch];
#pragma unroll
        for (int k = 0; k < ll_batch; ++k)
          if (i + k * T < L) v[k] = load8(p.send[j], 8 * (i + k * T), bytes);
#pragma unroll
        for (int k = 0; k < ll_batch; ++k)
          if (i + k * T < L) st_ll(lines + 16 * (i + k * T), ll_word(v[k], f), ll_word(v[k] >> 32, f));
      }
    }
    // 3. My own segment, while the peers' lines travel.
    const u64 self = p.recv_bytes[p.me];
    if (self)
      copy_range(p.recv[p.me], p.send[p.me], self < p.send_bytes[p.me] ? self : p.send_bytes[p.me], blockIdx.x, nb);
    if (self && self != p.send_bytes[p.me] && gt == 0) mismatch = 2;
    // 4. Receive: each peer's header (tag, byte count), then its lines.
    if (edge) {
      const char* cell = p.in[t] + slot_off[t];
      u64 a, b, c, d;
      if (!ll_wait(cell, flags[t], a, b, p.timeout_ns, vfail) ||
          !ll_wait(cell + 16, flags[t], c, d, p.timeout_ns, vfail)) {
        fail = 1;
      } else {
        const u64 tag = (a & 0xffffffffull) | (b << 32);
        const u64 sent = (c & 0xffffffffull) | (d << 32);
        if (tag != tags[t]) fail = 1;  // the peer runs another collective: it would never match
        if (sent != p.recv_bytes[t]) mismatch = 2;
        len[t] = sent < p.recv_bytes[t] ? sent : p.recv_bytes[t];
      }
    }
    __syncthreads();
    for (int s = 1; s < p.n && !*vfail; ++s) {  // from me-1 first: it pushes to me first
      const int j = (p.me + p.n - s) % p.n;
      const char* lines = p.in[j] + slot_off[j] + 16 * ll_header_lines;
      const unsigned f = flags[j];
      const u64 bytes = len[j];
      const u64 L = (bytes + 7) / 8;
      for (u64 i = gt; i < L && !*vfail; i += ll_batch * T) {
        u64 a[ll_batch], b[ll_batch];
#pragma unroll
        for (int k = 0; k < ll_batch; ++k)
          if (i + k * T < L) ld_ll(lines + 16 * (i + k * T), a[k], b[k]);
#pragma unroll
        for (int k = 0; k < ll_batch; ++k) {
          if (i + k * T >= L) continue;
          if (!ll_ok(a[k], b[k], f) && !ll_wait(lines + 16 * (i + k * T), f, a[k], b[k], p.timeout_ns, vfail)) {
            fail = 1;
            break;
          }
          store8(p.recv[j], 8 * (i + k * T), bytes, (a[k] & 0xffffffffull) | (b[k] << 32));
        }
      }
    }
  }
  if (!last_block_done(p.st, &fail, mismatch ? 2u : 0u, &last)) return;
  // 5. Every block has read its lines: ack each sender's cell, remember the acks I await.
  if (edge) {
    const int slot = slot_off[t] ? 1 : 0;
    if (!fail) st_release_sys(&p.hdr[t]->ll_ack[my_rank][slot], tags[t]);
    p.st->ll_pending[p.ranks[t]][slot] = tags[t];
    p.st->seq[p.ranks[t]] += 1;
  }
  reset_and_report(p.st, p.host_err);
}

struct ipc_blob {
  char host[64];
  int device;
  cudaIpcMemHandle_t handle[max_model_channels + 1];
};

class cuda_ipc_backend final : public backend {
 public:
  cuda_ipc_backend(const backend_config& cfg, std::uint64_t nonce) : cfg_(cfg), nonce_(nonce) {}

  ~cuda_ipc_backend() override {
    for (int c = 0; c < nch(); ++c)
      for (int r = 0; r < cfg_.size; ++r) {
        void* p = peer_base_.empty() ? nullptr : peer_base_[idx(c, r)];
        if (!p) continue;
        if (r == cfg_.rank)
          cudaFree(p);
        else
          cudaIpcCloseMemHandle(p);
      }
    for (auto* s : state_) cudaFree(s);
    for (auto* s : scratch_) cudaFree(s);
    if (host_err_) cudaFreeHost(host_err_);
  }

  result<void> init(rendezvous& rv) {
    if (cfg_.device >= 0) GFDIT_CUDA(cudaSetDevice(cfg_.device));
    GFDIT_CUDA(cudaGetDevice(&device_));
    GFDIT_CUDA(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device_));
    peer_base_.assign(static_cast<std::size_t>(nch() * cfg_.size), nullptr);
    ipc_blob blob{};
    ::gethostname(blob.host, sizeof blob.host - 1);
    blob.device = device_;
    for (int c = 0; c < nch(); ++c) {
      void* base = nullptr;
      // header | symmetric | staging | LL inbox (zeroed: flag 0 never matches)
      GFDIT_CUDA(cudaMalloc(&base, inbox_off() + inbox_bytes()));
      peer_base_[idx(c, cfg_.rank)] = base;
      GFDIT_CUDA(cudaMemset(base, 0, header_bytes));
      if (inbox_bytes()) GFDIT_CUDA(cudaMemset(static_cast<char*>(base) + inbox_off(), 0, inbox_bytes()));
      GFDIT_CUDA(cudaIpcGetMemHandle(&blob.handle[c], base));
      local_state* st = nullptr;
      GFDIT_CUDA(cudaMalloc(&st, sizeof(local_state)));
      GFDIT_CUDA(cudaMemset(st, 0, sizeof(local_state)));
      state_.push_back(st);
      if (c < cfg_.channels) {
        void* s = nullptr;
        GFDIT_CUDA(cudaMalloc(&s, cfg_.buffer_bytes));
        scratch_.push_back(s);
      }
    }
    GFDIT_CUDA(cudaHostAlloc(&host_err_, sizeof(unsigned), cudaHostAllocMapped));
    *host_err_ = 0;
    GFDIT_CUDA(cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev_err_), host_err_, 0));
    GFDIT_CUDA(cudaDeviceSynchronize());
    auto blobs = rv.all_gather(std::string(reinterpret_cast<const char*>(&blob), sizeof blob), cfg_.timeout);
    if (!blobs) return blobs.err();
    for (int r = 0; r < cfg_.size; ++r) {
      if (r == cfg_.rank) continue;
      const auto& b = (*blobs)[static_cast<std::size_t>(r)];
      if (b.size() != sizeof(ipc_blob)) return make_error(errc::decode_failed, "cuda-ipc: bad handle blob");
      ipc_blob peer;
      std::memcpy(&peer, b.data(), sizeof peer);
      if (std::strncmp(peer.host, blob.host, sizeof blob.host) != 0)
        return make_error(errc::invalid_argument, "cuda-ipc: rank " + std::to_string(r) +
                                                      " is on another host; use the nccl backend across nodes");
      if (peer.device == device_)
        return make_error(errc::invalid_argument, "cuda-ipc: two ranks share GPU " + std::to_string(device_));
      int can = 0;
      GFDIT_CUDA(cudaDeviceCanAccessPeer(&can, device_, peer.device));
      if (!can)
        return make_error(errc::unreachable, "cuda-ipc: GPU " + std::to_string(device_) + " cannot access GPU " +
                                                 std::to_string(peer.device));
      for (int c = 0; c < nch(); ++c) {
        void* p = nullptr;
        GFDIT_CUDA(cudaIpcOpenMemHandle(&p, peer.handle[c], cudaIpcMemLazyEnablePeerAccess));
        peer_base_[idx(c, r)] = p;
      }
    }
    auto opened = rv.all_gather("opened", cfg_.timeout);
    if (!opened) return opened.err();
    return {};
  }

  std::size_t capacity() const noexcept override { return cfg_.buffer_bytes; }
  void* scratch(int channel) noexcept override {
    return channel >= 0 && channel < cfg_.channels ? scratch_[static_cast<std::size_t>(channel)] : nullptr;
  }
  void* symmetric(int channel) noexcept override { return data(channel, cfg_.rank); }
  void* peer_symmetric(int channel, int rank) noexcept override { return data(channel, rank); }

  result<void> synchronize(stream_ref s) override {
    GFDIT_CUDA(cudaStreamSynchronize(static_cast<cudaStream_t>(s.handle)));
    const unsigned e = *static_cast<volatile unsigned*>(host_err_);
    if (e & 1u)
      return make_error(
          errc::timeout,
          "cuda-ipc: a peer did not signal in time (dead or not calling the collective); the world is poisoned");
    if (e & 2u) return make_error(errc::invalid_argument, "cuda-ipc: a peer sent a different byte count than expected");
    return {};
  }

  result<void> exchange(const exchange_plan& plan, stream_ref s) override {
    if (plan.n > max_peers) return make_error(errc::too_large, "cuda-ipc: more than 32 participants");
    auto stream = static_cast<cudaStream_t>(s.handle);
    // Every participant knows max_segment and n (or that it is a barrier), so all pick the same
    // protocol. LL's cost grows with what a rank pushes in total (twice the bytes, flags in line).
    const u64 pushed = static_cast<u64>(plan.max_segment) * static_cast<u64>(plan.n - 1);
    if (cfg_.ll_max_bytes && (plan.barrier || (plan.max_segment && pushed <= cfg_.ll_max_bytes)))
      return exchange_ll(plan, stream);
    const int c = plan.channel;
    char* region = data(c, cfg_.rank);
    xparams p{};
    fill_common(p, plan);
    bool in_place = true;
    for (int j = 0; j < plan.n; ++j) {
      const auto& x = plan.x[static_cast<std::size_t>(j)];
      if (j != plan.me && x.send_bytes &&
          !(static_cast<const char*>(x.send) >= region &&
            static_cast<const char*>(x.send) + x.send_bytes <= region + cfg_.buffer_bytes))
        in_place = false;
    }
    const u64 cap = cfg_.buffer_bytes;
    p.split = cap;
    std::size_t off = 0;
    u64 self_bytes = 0, remote_bytes = 0, staged = 0;
    for (int j = 0; j < plan.n; ++j) {
      const auto& x = plan.x[static_cast<std::size_t>(j)];
      const int r = plan.ranks[static_cast<std::size_t>(j)];
      p.ranks[j] = r;
      p.hdr[j] = reinterpret_cast<gpu_header*>(base(c, r));
      p.data[j] = data(c, r);
      p.recv[j] = static_cast<char*>(x.recv);
      p.recv_bytes[j] = x.recv_bytes;
      p.pub_bytes[j] = x.send_bytes;
      if (j == plan.me) {
        p.self_src = static_cast<const char*>(x.send);
        if (x.recv == x.send && x.recv_bytes == x.send_bytes) p.recv_bytes[j] = 0;  // in place
        self_bytes = p.recv_bytes[j];
        continue;
      }
      remote_bytes += x.recv_bytes;
      if (!x.send_bytes) continue;
      const auto* src = static_cast<const char*>(x.send);
      if (in_place) {
        p.pub_off[j] = static_cast<u64>(src - region);
        continue;
      }
      int k = 0;  // the same segment for several peers (all_gather) is staged once
      while (k < j && !(k != plan.me && plan.x[static_cast<std::size_t>(k)].send == x.send &&
                        plan.x[static_cast<std::size_t>(k)].send_bytes == x.send_bytes))
        ++k;
      if (k < j) {
        p.pub_off[j] = p.pub_off[k];
        continue;
      }
      if (off + x.send_bytes > cap) return make_error(errc::too_large, "cuda-ipc: exchange exceeds buffer_bytes");
      p.stage_src[j] = src;
      p.pub_off[j] = cap + off;
      off += (x.send_bytes + 15) / 16 * 16;
      staged += x.send_bytes;
    }
    p.staged = staged > 0;
    p.stage_hi = cap + off;
    // A staged exchange may leave `done` pending (its staging area is protected by the next
    // exchange's wait); one published from the symmetric area may not, since the caller may
    // rewrite that area as soon as the stream reaches the next operation.
    p.defer = p.staged && cfg_.defer_done;
    const u64 work = self_bytes + remote_bytes + staged;
    const u64 per_block = 32 * 1024;
    u64 blocks = (work + per_block - 1) / per_block;
    if (blocks < 1) blocks = 1;
    if (blocks > static_cast<u64>(sms_)) blocks = static_cast<u64>(sms_);
    if (p.staged && cfg_.pipeline_min_bytes && staged >= cfg_.pipeline_min_bytes && blocks >= 8) {
      u64 chunk = std::max<u64>(cfg_.pipeline_chunk, (off + max_chunks - 1) / max_chunks);
      chunk = (chunk + 15) / 16 * 16;
      p.chunk = chunk;
      p.stagers = static_cast<int>(blocks / 4);
    }
    // Own segment on blocks of its own (a local copy runs beside the NVLink pulls), in
    // proportion to its share, local bytes being ~3x cheaper than remote ones.
    const u64 pullers = blocks - static_cast<u64>(p.stagers);
    if (self_bytes && remote_bytes && pullers >= 4)
      p.self_blocks = static_cast<int>(std::max<u64>(1, pullers * self_bytes / (self_bytes + 3 * remote_bytes)));
    exchange_kernel<<<static_cast<unsigned>(blocks), 512, 0, stream>>>(p);
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  result<void> exchange_ll(const exchange_plan& plan, cudaStream_t stream) {
    const int c = plan.channel;
    llparams p{};
    fill_common(p, plan);
    p.slot_stride = slot_stride();
    const int me = cfg_.rank;
    u64 lines = 0;
    for (int j = 0; j < plan.n; ++j) {
      const auto& x = plan.x[static_cast<std::size_t>(j)];
      const int r = plan.ranks[static_cast<std::size_t>(j)];
      p.ranks[j] = r;
      p.hdr[j] = reinterpret_cast<gpu_header*>(base(c, r));
      p.send[j] = static_cast<const char*>(x.send);
      p.send_bytes[j] = x.send ? x.send_bytes : 0;
      p.recv[j] = static_cast<char*>(x.recv);
      p.recv_bytes[j] = x.recv ? x.recv_bytes : 0;
      if (j == plan.me) {
        if (x.recv == x.send) p.recv_bytes[j] = 0;  // in place
        lines += p.recv_bytes[j] / 16;
        continue;
      }
      if (p.send_bytes[j] > cfg_.ll_max_bytes || p.recv_bytes[j] > cfg_.ll_max_bytes)
        return make_error(errc::too_large, "cuda-ipc: an edge exceeds the announced max_segment");
      p.out[j] = cell(c, r, me);
      p.in[j] = cell(c, me, r);
      lines += (p.send_bytes[j] + 7) / 8 + (p.recv_bytes[j] + 7) / 8;
    }
    // One line per thread while the SMs last (measured on 2xH200: 64 KiB all_to_all 8.8 us,
    // against 9.1 us at 4 lines per thread; 1 MiB 11.2 against 12.1 us); beyond, ll_batch in
    // flight per thread.
    u64 blocks = (lines + 511) / 512;
    blocks = std::max<u64>(1, std::min<u64>(blocks, static_cast<u64>(sms_)));
    ll_kernel<<<static_cast<unsigned>(blocks), 512, 0, stream>>>(p);
    GFDIT_CUDA(cudaGetLastError());
    return {};
  }

  result<void> reduce_rows(dtype t, const void* rows, int n, std::size_t count, void* dst, stream_ref s) override {
    GFDIT_CUDA(launch_reduce_rows(t, rows, n, count, dst, static_cast<cudaStream_t>(s.handle)));
    return {};
  }

 private:
  int nch() const { return cfg_.channels + 1; }
  // What both kernels' parameters hold alike.
  template <class P>
  void fill_common(P& p, const exchange_plan& plan) const {
    p.n = plan.n;
    p.me = plan.me;
    p.nonce = nonce_;
    p.gid = plan.group_id;
    p.epoch = plan.epoch;
    p.timeout_ns = static_cast<u64>(std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.timeout).count());
    p.st = state_[static_cast<std::size_t>(plan.channel)];
    p.host_err = dev_err_;
  }
  // LL inbox: [slot 2][source: the other ranks in rank order][cell], cell = 2 header lines +
  // 16 bytes per 8 payload bytes.
  u64 cell_bytes() const { return (16 * ll_header_lines + (cfg_.ll_max_bytes + 7) / 8 * 16 + 127) / 128 * 128; }
  u64 slot_stride() const { return static_cast<u64>(cfg_.size - 1) * cell_bytes(); }
  u64 inbox_off() const { return header_bytes + 2 * cfg_.buffer_bytes; }
  u64 inbox_bytes() const { return cfg_.ll_max_bytes ? 2 * slot_stride() : 0; }
  // Slot 0 of source rank src's cell in rank dst's inbox (channel c).
  char* cell(int c, int dst, int src) const {
    return base(c, dst) + inbox_off() + static_cast<u64>(src < dst ? src : src - 1) * cell_bytes();
  }
  std::size_t idx(int c, int r) const { return static_cast<std::size_t>(c * cfg_.size + r); }
  char* base(int c, int r) const { return static_cast<char*>(peer_base_[idx(c, r)]); }
  char* data(int c, int r) const { return base(c, r) + header_bytes; }

  backend_config cfg_;
  std::uint64_t nonce_;
  int device_ = 0;
  int sms_ = 1;
  std::vector<void*> peer_base_;  // [channel][rank]: mapped regions (mine allocated)
  std::vector<local_state*> state_;
  std::vector<void*> scratch_;
  unsigned* host_err_ = nullptr;
  unsigned* dev_err_ = nullptr;
};

}  // namespace

result<std::unique_ptr<backend>> make_cuda_ipc_backend(rendezvous& rv, const backend_config& cfg, std::uint64_t nonce) {
  auto be = std::make_unique<cuda_ipc_backend>(cfg, nonce);
  if (auto r = be->init(rv); !r) return r.err();
  return std::unique_ptr<backend>(std::move(be));
}

}  // namespace gfdit::coll::detail
