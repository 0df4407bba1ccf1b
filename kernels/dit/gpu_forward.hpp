#pragma once
// The DiT on one GPU (degree 1): bf16 weights and activations, fp32 residual stream, cuBLASLt
// GEMMs whose algorithm is chosen once per weight shape (at a fixed reference row count, never
// per call), fused elementwise kernels, the deterministic attention forward, and CUDA graphs
// per (batch, tokens) for the timing paths. Without CUDA every entry point returns an error.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/forward.hpp"
#include "kernels/dit/model.hpp"
#include "kernels/dit/sampler.hpp"

namespace gfdit::dit {

bool gpu_available() noexcept;
// sampler.hpp's reshard on a GPU World (cuda-ipc, nccl): the host shard is staged through device
// memory of the current CUDA device. Same contract, same bits; every member of either group calls it.
result<std::vector<float>> reshard_on_device(coll::World& w, const coll::Group& from, const coll::Group& to,
                                             const model_config& c, std::span<const float> shard);
int gpu_count() noexcept;  // visible CUDA devices (0 without CUDA)

struct gpu_timing {
  double eager_ms = 0;  // median over iterations, launches issued one by one
  double graph_ms = 0;  // median, the same launches replayed from a CUDA graph
};

class gpu_model {
 public:
  // Uploads a host model's weights.
  static result<std::unique_ptr<gpu_model>> upload(const model& m, int device = 0);
  // Weights generated on the device from the seed (benchmarks of large configs: no host copy).
  static result<std::unique_ptr<gpu_model>> generate(const model_config& c, std::uint64_t seed, int device = 0);
  ~gpu_model();

  // Same contract as forward_cpu at degree 1. shards > 1 computes what that many Ulysses ranks
  // would (row-wise work per token shard, attention per head group) on this one GPU, with the
  // all-to-all as the identity: the bits must not change.
  result<std::vector<float>> forward(const forward_input& in, int shards = 1);
  // forward_cpu's contract on the GPU: this rank's image shard in and out, Ulysses across the
  // group for real (two all-to-alls per block through g.world, which must have a GPU backend:
  // cuda_ipc or nccl; every member calls it). Per rank the GEMM rows are its token shard (text
  // and image split apart, as on the CPU) and attention covers its heads over all tokens, so
  // the output bits equal degree 1's. No World: forward(in, 1).
  result<std::vector<float>> forward(const forward_input& in, const sp_group& g);
  // The sampler (sampler.hpp's denoise, the same loop and update) with this model's forward as
  // the step's model call: on the GPU, Ulysses across g for real when its degree is above 1 (a
  // GPU World); CFG-parallel exchanges the two passes' outputs through g.world, staged in device
  // memory. Steps [begin, end); `shard` (host, my image tokens) is updated in place. The final
  // latent's bits do not depend on the layout (degree, members, CFG-parallel, changes between
  // chunks of steps), as on the CPU.
  result<void> denoise(const request& r, int begin, int end, const sp_group& g, std::vector<float>& shard);
  // One block (block 0) at (batch, sequence tokens), on synthetic activations.
  result<gpu_timing> time_block(int batch, std::int64_t tokens, int iters);
  // All blocks plus the final layer: one denoising step's transformer work.
  result<gpu_timing> time_step(int batch, std::int64_t tokens, int iters);
  // One rank's compute under Ulysses at `degree` (no all-to-all): GEMMs and elementwise work on
  // tokens/degree rows, attention over all tokens for heads/degree heads. A bound on scaling.
  result<gpu_timing> time_rank_compute(int batch, std::int64_t tokens, int degree, bool whole_step, int iters);
  // One step (whole_step) or block 0 as this rank of a real Ulysses group (every member calls
  // it): its token shard of the model's sequence, both all-to-alls, synthetic activations. The
  // members start each timed iteration together (a barrier before the first event).
  result<gpu_timing> time_ulysses(int batch, const sp_group& g, bool whole_step, int iters);
  // Head chunks of the Ulysses pipeline (forward with a World, time_ulysses): each rank's heads
  // are split into `chunks` groups whose exchanges overlap the previous group's attention.
  // Default 1 (no pipeline); a count that does not divide the heads per rank runs as 1. The
  // output bits do not depend on it. Range 1..8.
  result<void> set_ulysses_chunks(int chunks);
  // How the Ulysses exchanges move data (forward with a World, time_ulysses). `direct`: the q/k/v
  // and output kernels write each element straight into its owner's buffers, which live in the
  // group channel's symmetric area (needs a cuda-ipc World and buffer_bytes >= 2 * (3 * B *
  // heads/degree * tokens * padded head size + B * largest shard * hidden) bytes): two kernels
  // and two barriers per block, nothing staged, no unpack. `all_to_all`: pack, World::all_to_all,
  // unpack (any GPU backend; head chunks apply). `automatic` (default): direct where it can.
  // Asking for direct where it cannot run is an error at the forward. The bits do not depend on it.
  enum class ulysses_exchange { automatic, direct, all_to_all };
  void set_ulysses_exchange(ulysses_exchange e) noexcept;
  // Median time of each stage of one block (eager), in milliseconds, in launch order.
  // With a World (every member calls it): block 0 as this rank of a real Ulysses group, direct
  // exchange only, the model's own token count.
  result<std::vector<std::pair<std::string, double>>> profile_block(int batch, std::int64_t tokens, int iters,
                                                                    const sp_group& g = {});

  struct impl;

 private:
  explicit gpu_model(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gfdit::dit
