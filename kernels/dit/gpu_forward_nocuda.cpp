// Builds without CUDA: the GPU entry points say so.
#include "kernels/dit/gpu_forward.hpp"

namespace gfdit::dit {

struct gpu_model::impl {};

bool gpu_available() noexcept { return false; }
int gpu_count() noexcept { return 0; }
result<std::vector<float>> reshard_on_device(coll::World&, const coll::Group&, const coll::Group&, const model_config&,
                                             std::span<const float>) {
  return make_error(errc::not_found, "dit gpu: built without CUDA");
}
gpu_model::gpu_model(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
gpu_model::~gpu_model() = default;

namespace {
error no_cuda() { return make_error(errc::not_found, "dit gpu: built without CUDA"); }
}  // namespace

result<std::unique_ptr<gpu_model>> gpu_model::upload(const model&, int) { return no_cuda(); }
result<std::unique_ptr<gpu_model>> gpu_model::generate(const model_config&, std::uint64_t, int) { return no_cuda(); }
result<std::vector<float>> gpu_model::forward(const forward_input&, int) { return no_cuda(); }
result<std::vector<float>> gpu_model::forward(const forward_input&, const sp_group&) { return no_cuda(); }
result<gpu_timing> gpu_model::time_ulysses(int, const sp_group&, bool, int) { return no_cuda(); }
result<void> gpu_model::set_ulysses_chunks(int) { return no_cuda(); }
result<void> gpu_model::denoise(const request&, int, int, const sp_group&, std::vector<float>&) { return no_cuda(); }
void gpu_model::set_ulysses_exchange(ulysses_exchange) noexcept {}
result<gpu_timing> gpu_model::time_block(int, std::int64_t, int) { return no_cuda(); }
result<gpu_timing> gpu_model::time_step(int, std::int64_t, int) { return no_cuda(); }
result<gpu_timing> gpu_model::time_rank_compute(int, std::int64_t, int, bool, int) { return no_cuda(); }
result<std::vector<std::pair<std::string, double>>> gpu_model::profile_block(int, std::int64_t, int, const sp_group&) {
  return no_cuda();
}

}  // namespace gfdit::dit
