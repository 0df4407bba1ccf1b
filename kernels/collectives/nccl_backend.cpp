// nccl backend: across nodes. One world communicator, created once (non-blocking, so set-up and
// every call can be bounded by the world's timeout); an exchange is grouped ncclSend/ncclRecv
// with each participant, issued in group order. Same-rank segments are a device copy. A dead
// peer surfaces through ncclCommGetAsyncError / the timeout in synchronize(), which aborts the
// communicator instead of hanging.
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <nccl.h>

#include "common/gpu_check.hpp"
#include "kernels/collectives/backend.hpp"
#include "kernels/collectives/cuda_kernels.hpp"

namespace gfdit::coll::detail {
namespace {

class nccl_backend final : public backend {
 public:
  explicit nccl_backend(const backend_config& cfg) : cfg_(cfg) {}
  ~nccl_backend() override {
    if (comm_) {
      if (broken_)
        ncclCommAbort(comm_);
      else
        ncclCommDestroy(comm_);
    }
    for (auto* s : scratch_) cudaFree(s);
    if (token_) cudaFree(token_);
  }

  result<void> init(rendezvous& rv) {
    if (cfg_.device >= 0) GFDIT_CUDA(cudaSetDevice(cfg_.device));
    ncclUniqueId id{};
    if (cfg_.rank == 0) GFDIT_NCCL(ncclGetUniqueId(&id));
    auto ids = rv.all_gather(std::string(reinterpret_cast<const char*>(&id), sizeof id), cfg_.timeout);
    if (!ids) return ids.err();
    if ((*ids)[0].size() != sizeof id) return make_error(errc::decode_failed, "nccl: bad unique id blob");
    std::memcpy(&id, (*ids)[0].data(), sizeof id);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    GFDIT_NCCL(ncclCommInitRankConfig(&comm_, cfg_.size, id, cfg_.rank, &config));
    if (auto r = wait_ready(); !r) return r;
    GFDIT_CUDA(cudaMalloc(&token_, 64 + max_group_size));
    for (int c = 0; c < cfg_.channels; ++c) {
      void* s = nullptr;
      GFDIT_CUDA(cudaMalloc(&s, cfg_.buffer_bytes));
      scratch_.push_back(s);
    }
    return {};
  }

  // NCCL needs no staging buffer; all_reduce pieces still follow buffer_bytes (the scratch).
  std::size_t capacity() const noexcept override { return SIZE_MAX; }
  void* scratch(int channel) noexcept override {
    return channel >= 0 && channel < cfg_.channels ? scratch_[static_cast<std::size_t>(channel)] : nullptr;
  }
  void* symmetric(int) noexcept override { return nullptr; }

  result<void> exchange(const exchange_plan& plan, stream_ref s) override {
    if (broken_) return make_error(errc::state, "nccl: the world communicator was aborted after a timeout");
    auto stream = static_cast<cudaStream_t>(s.handle);
    const auto me = static_cast<std::size_t>(plan.me);
    if (const auto& x = plan.x[me]; x.recv_bytes && x.recv != x.send) {
      if (x.recv_bytes != x.send_bytes) return make_error(errc::invalid_argument, "nccl: self segment sizes differ");
      GFDIT_CUDA(cudaMemcpyAsync(x.recv, x.send, x.recv_bytes, cudaMemcpyDeviceToDevice, stream));
    }
    if (plan.barrier && plan.n > 1) {
      // A barrier: NCCL has none on a subset, so exchange one byte with each participant.
      // Each edge gets its own receive byte (a grouped call may run them concurrently).
      exchange_plan b = plan;
      for (int j = 0; j < plan.n; ++j)
        if (static_cast<std::size_t>(j) != me) b.x[static_cast<std::size_t>(j)] = {token_, 1, token_ + 64 + j, 1};
      return grouped(b, stream);
    }
    return grouped(plan, stream);
  }

  result<void> reduce_rows(dtype t, const void* rows, int n, std::size_t count, void* dst, stream_ref s) override {
    GFDIT_CUDA(launch_reduce_rows(t, rows, n, count, dst, static_cast<cudaStream_t>(s.handle)));
    return {};
  }

  result<void> synchronize(stream_ref s) override {
    auto stream = static_cast<cudaStream_t>(s.handle);
    const auto deadline = std::chrono::steady_clock::now() + cfg_.timeout;
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) return {};
      if (q != cudaErrorNotReady) GFDIT_CUDA(q);
      ncclResult_t async = ncclSuccess;
      GFDIT_NCCL(ncclCommGetAsyncError(comm_, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        abort();
        return make_error(errc::unreachable, std::string("nccl: ") + ncclGetErrorString(async));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        abort();
        return make_error(errc::timeout, "nccl: collective did not finish in time (dead peer?); communicator aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

 private:
  result<void> grouped(const exchange_plan& plan, cudaStream_t stream) {
    const auto me = static_cast<std::size_t>(plan.me);
    GFDIT_NCCL(ncclGroupStart());
    for (int j = 0; j < plan.n; ++j) {  // group order on every member (the DESIGN.md trap)
      if (static_cast<std::size_t>(j) == me) continue;
      const auto& x = plan.x[static_cast<std::size_t>(j)];
      const int peer = plan.ranks[static_cast<std::size_t>(j)];
      if (x.send_bytes) GFDIT_NCCL(ncclSend(x.send, x.send_bytes, ncclUint8, peer, comm_, stream));
      if (x.recv_bytes) GFDIT_NCCL(ncclRecv(x.recv, x.recv_bytes, ncclUint8, peer, comm_, stream));
    }
    const ncclResult_t end = ncclGroupEnd();
    if (end == ncclSuccess) return {};
    GFDIT_NCCL(end);
    return wait_ready();  // ncclInProgress: the non-blocking communicator is still launching
  }

  // Settles ncclInProgress of a non-blocking communicator, bounded by the timeout.
  result<void> wait_ready() {
    const auto deadline = std::chrono::steady_clock::now() + cfg_.timeout;
    for (;;) {
      ncclResult_t async = ncclSuccess;
      GFDIT_NCCL(ncclCommGetAsyncError(comm_, &async));
      if (async == ncclSuccess) return {};
      if (async != ncclInProgress) {
        abort();
        return make_error(errc::unreachable, std::string("nccl: ") + ncclGetErrorString(async));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        abort();
        return make_error(errc::timeout, "nccl: operation still in progress at the timeout; communicator aborted");
      }
      std::this_thread::yield();
    }
  }

  void abort() {
    if (comm_ && !broken_) ncclCommAbort(comm_);
    broken_ = true;
    comm_ = nullptr;
  }

  backend_config cfg_;
  ncclComm_t comm_ = nullptr;
  bool broken_ = false;
  std::vector<void*> scratch_;
  char* token_ = nullptr;
};

}  // namespace

result<std::unique_ptr<backend>> make_nccl_backend(rendezvous& rv, const backend_config& cfg, std::uint64_t) {
  auto be = std::make_unique<nccl_backend>(cfg);
  if (auto r = be->init(rv); !r) return r.err();
  return std::unique_ptr<backend>(std::move(be));
}

}  // namespace gfdit::coll::detail
