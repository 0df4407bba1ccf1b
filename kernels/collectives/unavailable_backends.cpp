// Factories for the backends this build does not have, so World::create reports a clear error.
#include "kernels/collectives/backend.hpp"

namespace gfdit::coll::detail {

#if !GFDIT_COLL_HAVE_CUDA
result<std::unique_ptr<backend>> make_cuda_ipc_backend(rendezvous&, const backend_config&, std::uint64_t) {
  return make_error(errc::not_found, "cuda-ipc backend: this build has no CUDA");
}
#endif
#if !GFDIT_COLL_HAVE_NCCL
result<std::unique_ptr<backend>> make_nccl_backend(rendezvous&, const backend_config&, std::uint64_t) {
  return make_error(errc::not_found, "nccl backend: this build has no NCCL");
}
#endif

}  // namespace gfdit::coll::detail
