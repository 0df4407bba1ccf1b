// Builds without CUDA: the GPU VAE's entry points say so.
#include "kernels/dit/vae_gpu.hpp"

namespace gfdit::dit {

struct gpu_vae_decoder::impl {
  vae_config c;
};

namespace {
error no_cuda() { return make_error(errc::not_found, "vae gpu: built without CUDA"); }
}  // namespace

gpu_vae_decoder::gpu_vae_decoder(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
gpu_vae_decoder::~gpu_vae_decoder() = default;
const vae_config& gpu_vae_decoder::config() const noexcept { return impl_->c; }

result<std::unique_ptr<gpu_vae_decoder>> gpu_vae_decoder::upload(const vae_decoder&, int) { return no_cuda(); }
result<std::vector<float>> gpu_vae_decoder::decode(std::span<const float>, int, int, int) { return no_cuda(); }
result<double> gpu_vae_decoder::time_decode(int, int, int, int) { return no_cuda(); }

}  // namespace gfdit::dit
