// host backend: POSIX shared memory + C++ atomics between processes on one host.
// Each rank owns one segment: per channel a header (signal cells written by peers, descriptors
// of what this rank publishes) and a data region. Pull model: a rank copies its outgoing
// segments into its own region, signals `ready` to each peer, waits for theirs, copies what each
// peer published for it out of the peer's region, then signals `done` and waits, so no region is
// reused while a peer still reads it.
#include <atomic>
#include <bit>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/collectives/backend.hpp"

namespace gfdit::coll::detail {
namespace {

struct alignas(64) cell {
  std::atomic<std::uint64_t> v;
};
struct desc {
  std::atomic<std::uint64_t> off;
  std::atomic<std::uint64_t> bytes;
};
struct channel_header {
  cell ready[max_world_size];  // [src rank]: written by src
  cell done[max_world_size];
  desc pub[max_world_size];  // [dst rank]: what I publish for dst, in my data region
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared-memory atomics must be lock-free");

constexpr std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) / a * a; }
constexpr std::size_t header_bytes = round_up(sizeof(channel_header), 4096);

class mapping {
 public:
  mapping() = default;
  mapping(void* p, std::size_t n) : p_(p), n_(n) {}
  mapping(mapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  mapping& operator=(mapping&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~mapping() {
    if (p_) ::munmap(p_, n_);
  }
  std::byte* get() const { return static_cast<std::byte*>(p_); }

 private:
  void* p_ = nullptr;
  std::size_t n_ = 0;
};

// bf16/f16 sums in fp32, rounded once (round to nearest even), as the GPU kernels do.
float bf16_to_f32(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t{h} << 16); }
std::uint16_t f32_to_bf16(float f) {
  const auto u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

class host_backend final : public backend {
 public:
  host_backend(const backend_config& cfg, std::uint64_t nonce)
      : cfg_(cfg), nonce_(nonce), stride_(header_bytes + round_up(cfg.buffer_bytes, 4096)) {
    seq_.assign(static_cast<std::size_t>((cfg.channels + 1) * cfg.size), 0);
    scratch_.resize(static_cast<std::size_t>(cfg.channels));
    for (auto& s : scratch_) s.assign(cfg.buffer_bytes / 8 + 1, 0);
  }

  result<void> init(rendezvous& rv) {
    const std::size_t total = stride_ * static_cast<std::size_t>(cfg_.channels + 1);
    char name[96];
    std::snprintf(name, sizeof name, "/gfdit-coll-%016llx-%d-%d", static_cast<unsigned long long>(nonce_), cfg_.rank,
                  static_cast<int>(::getpid()));
    const int fd = ::shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
      return make_error(errc::io, std::string("host backend: shm_open ") + name + ": " + std::strerror(errno));
    const bool sized = ::ftruncate(fd, static_cast<off_t>(total)) == 0;
    void* p = sized ? ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    ::close(fd);
    if (p == MAP_FAILED) {
      ::shm_unlink(name);
      return make_error(errc::io, std::string("host backend: cannot size/map ") + name + ": " + std::strerror(errno));
    }
    maps_.resize(static_cast<std::size_t>(cfg_.size));
    maps_[static_cast<std::size_t>(cfg_.rank)] = mapping(p, total);
    auto names = rv.all_gather(name, cfg_.timeout);
    if (!names) {
      ::shm_unlink(name);
      return names.err();
    }
    for (int r = 0; r < cfg_.size; ++r) {
      if (r == cfg_.rank) continue;
      const auto& peer = (*names)[static_cast<std::size_t>(r)];
      const int pfd = ::shm_open(peer.c_str(), O_RDWR, 0);
      void* q = pfd >= 0 ? ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0) : MAP_FAILED;
      if (pfd >= 0) ::close(pfd);
      if (q == MAP_FAILED) {
        ::shm_unlink(name);
        return make_error(errc::io, "host backend: cannot map peer segment " + peer);
      }
      maps_[static_cast<std::size_t>(r)] = mapping(q, total);
    }
    // Everyone has mapped everyone: the names can go, so a crash leaves nothing behind.
    auto mapped = rv.all_gather("mapped", cfg_.timeout);
    ::shm_unlink(name);
    if (!mapped) return mapped.err();
    return {};
  }

  std::size_t capacity() const noexcept override { return cfg_.buffer_bytes; }
  void* scratch(int channel) noexcept override {
    return channel >= 0 && channel < cfg_.channels ? scratch_[static_cast<std::size_t>(channel)].data() : nullptr;
  }
  void* symmetric(int channel) noexcept override { return data(cfg_.rank, channel); }
  void* peer_symmetric(int channel, int rank) noexcept override { return data(rank, channel); }
  result<void> synchronize(stream_ref) override { return {}; }

  result<void> exchange(const exchange_plan& p, stream_ref) override {
    const int c = p.channel;
    const auto me = static_cast<std::size_t>(p.me);
    const auto n = static_cast<std::size_t>(p.n);
    channel_header* mine = header(cfg_.rank, c);
    std::byte* region = data(cfg_.rank, c);
    // Publish: stage outgoing segments (unless they already lie in the region).
    bool in_place = true;
    for (std::size_t j = 0; j < n; ++j)
      if (j != me && p.x[j].send_bytes && !inside(p.x[j].send, region)) in_place = false;
    std::size_t off = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (j == me) continue;
      const auto& x = p.x[j];
      std::uint64_t o = 0;
      if (x.send_bytes) {
        std::size_t k = 0;  // the same segment for several peers (all_gather) is staged once
        while (k < j && !(k != me && p.x[k].send == x.send && p.x[k].send_bytes == x.send_bytes)) ++k;
        if (in_place) {
          o = static_cast<std::uint64_t>(static_cast<const std::byte*>(x.send) - region);
        } else if (k < j) {
          o = mine->pub[p.ranks[k]].off.load(std::memory_order_relaxed);
        } else {
          if (off + x.send_bytes > cfg_.buffer_bytes)
            return make_error(errc::too_large, "host backend: exchange exceeds buffer_bytes");
          std::memcpy(region + off, x.send, x.send_bytes);
          o = off;
          off = round_up(off + x.send_bytes, 64);
        }
      }
      auto& d = mine->pub[p.ranks[j]];
      d.off.store(o, std::memory_order_relaxed);
      d.bytes.store(x.send_bytes, std::memory_order_relaxed);
    }
    std::uint64_t tags[max_group_size];
    for (std::size_t j = 0; j < n; ++j)
      if (j != me) tags[j] = edge_tag(nonce_, p.group_id, p.epoch, ++seq(c, p.ranks[j]));
    // Self: a plain copy.
    bool mismatch = false;
    if (const auto& x = p.x[me]; x.recv_bytes) {
      if (x.send_bytes != x.recv_bytes) mismatch = true;
      if (x.recv != x.send) std::memmove(x.recv, x.send, std::min(x.recv_bytes, x.send_bytes));
    }
    const auto deadline = std::chrono::steady_clock::now() + cfg_.timeout;
    for (std::size_t j = 0; j < n; ++j)
      if (j != me) header(p.ranks[j], c)->ready[cfg_.rank].v.store(tags[j], std::memory_order_release);
    for (std::size_t j = 0; j < n; ++j)
      if (j != me)
        if (auto r = wait(mine->ready[p.ranks[j]].v, tags[j], deadline, p.ranks[j], "ready"); !r) return r;
    for (std::size_t j = 0; j < n; ++j) {
      const auto& x = p.x[j];
      if (j == me || !x.recv_bytes) continue;
      auto& d = header(p.ranks[j], c)->pub[cfg_.rank];
      const auto o = d.off.load(std::memory_order_relaxed);
      const auto b = d.bytes.load(std::memory_order_relaxed);
      if (b != x.recv_bytes) mismatch = true;
      if (o + std::min<std::uint64_t>(b, x.recv_bytes) <= cfg_.buffer_bytes)
        std::memcpy(x.recv, data(p.ranks[j], c) + o, std::min<std::uint64_t>(b, x.recv_bytes));
    }
    for (std::size_t j = 0; j < n; ++j)
      if (j != me) header(p.ranks[j], c)->done[cfg_.rank].v.store(tags[j], std::memory_order_release);
    for (std::size_t j = 0; j < n; ++j)
      if (j != me)
        if (auto r = wait(mine->done[p.ranks[j]].v, tags[j], deadline, p.ranks[j], "done"); !r) return r;
    if (mismatch)
      return make_error(errc::invalid_argument, "host backend: a peer sent a different byte count than expected");
    return {};
  }

  result<void> reduce_rows(dtype t, const void* rows, int n, std::size_t count, void* dst, stream_ref) override {
    switch (t) {
      case dtype::f32: {
        auto* in = static_cast<const float*>(rows);
        auto* out = static_cast<float*>(dst);
        for (std::size_t i = 0; i < count; ++i) {
          float acc = in[i];
          for (int r = 1; r < n; ++r) acc += in[static_cast<std::size_t>(r) * count + i];
          out[i] = acc;
        }
        return {};
      }
      case dtype::bf16: {
        auto* in = static_cast<const std::uint16_t*>(rows);
        auto* out = static_cast<std::uint16_t*>(dst);
        for (std::size_t i = 0; i < count; ++i) {
          float acc = bf16_to_f32(in[i]);
          for (int r = 1; r < n; ++r) acc += bf16_to_f32(in[static_cast<std::size_t>(r) * count + i]);
          out[i] = f32_to_bf16(acc);
        }
        return {};
      }
      case dtype::f16: {
#if defined(__FLT16_MAX__)
        auto* in = static_cast<const _Float16*>(rows);
        auto* out = static_cast<_Float16*>(dst);
        for (std::size_t i = 0; i < count; ++i) {
          float acc = static_cast<float>(in[i]);
          for (int r = 1; r < n; ++r) acc += static_cast<float>(in[static_cast<std::size_t>(r) * count + i]);
          out[i] = static_cast<_Float16>(acc);
        }
        return {};
#else
        return make_error(errc::invalid_argument, "host backend: f16 needs compiler _Float16");
#endif
      }
      case dtype::i32: {
        auto* in = static_cast<const std::uint32_t*>(rows);  // wrap-around, like NCCL
        auto* out = static_cast<std::uint32_t*>(dst);
        for (std::size_t i = 0; i < count; ++i) {
          std::uint32_t acc = in[i];
          for (int r = 1; r < n; ++r) acc += in[static_cast<std::size_t>(r) * count + i];
          out[i] = acc;
        }
        return {};
      }
    }
    return make_error(errc::invalid_argument, "host backend: unknown dtype");
  }

 private:
  channel_header* header(int rank, int channel) const {
    return reinterpret_cast<channel_header*>(maps_[static_cast<std::size_t>(rank)].get() +
                                             stride_ * static_cast<std::size_t>(channel));
  }
  std::byte* data(int rank, int channel) const {
    return maps_[static_cast<std::size_t>(rank)].get() + stride_ * static_cast<std::size_t>(channel) + header_bytes;
  }
  bool inside(const void* p, const std::byte* region) const {
    auto* b = static_cast<const std::byte*>(p);
    return b >= region && b < region + cfg_.buffer_bytes;
  }
  std::uint64_t& seq(int channel, int rank) { return seq_[static_cast<std::size_t>(channel * cfg_.size + rank)]; }

  // Spin briefly, then yield, then sleep: workers may outnumber cores (CI has two).
  result<void> wait(const std::atomic<std::uint64_t>& cell, std::uint64_t tag,
                    std::chrono::steady_clock::time_point deadline, int peer, const char* what) {
    for (std::uint32_t i = 0;; ++i) {
      if (cell.load(std::memory_order_acquire) == tag) return {};
      if (i < 64) continue;
      if ((i & 63) == 0 && std::chrono::steady_clock::now() > deadline)
        return make_error(errc::timeout, "host backend: rank " + std::to_string(peer) + " did not signal " + what +
                                             " in time (dead or not calling the collective)");
      if (i < 4096) {
        ::sched_yield();
      } else {
        const timespec ts{0, 20000};
        ::nanosleep(&ts, nullptr);
      }
    }
  }

  backend_config cfg_;
  std::uint64_t nonce_;
  std::size_t stride_;
  std::vector<mapping> maps_;
  std::vector<std::uint64_t> seq_;  // [channel][peer]: exchanges with that peer so far
  std::vector<std::vector<std::uint64_t>> scratch_;
};

}  // namespace

result<std::unique_ptr<backend>> make_host_backend(rendezvous& rv, const backend_config& cfg, std::uint64_t nonce) {
  auto be = std::make_unique<host_backend>(cfg, nonce);
  if (auto r = be->init(rv); !r) return r.err();
  return std::unique_ptr<backend>(std::move(be));
}

}  // namespace gfdit::coll::detail
