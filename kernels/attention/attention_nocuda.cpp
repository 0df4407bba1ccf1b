// Built when CUDA is absent: the GPU entry points exist and say why they cannot run.
#include "kernels/attention/attention.hpp"

namespace gfdit::attention {

bool gpu_available() noexcept { return false; }
const char* gpu_kernels() noexcept { return "none"; }

result<void> forward(const problem&, const forward_args&, void*) {
  return make_error(errc::state, "attention: built without CUDA");
}

int forward_whole_wave_pairs(const problem&) noexcept { return 0; }

std::size_t backward_workspace_bytes(const problem&) noexcept { return 0; }

result<void> backward(const problem&, const backward_args&, void*) {
  return make_error(errc::state, "attention: built without CUDA");
}

}  // namespace gfdit::attention
