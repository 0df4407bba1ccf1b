// The dit backend's configuration errors: what was wrong, before any World is joined.
#include <gtest/gtest.h>

#include <filesystem>

#include "actors/worker/dit_backend.hpp"
#include "kernels/dit/gpu_forward.hpp"

namespace gfdit {
namespace {

dit_backend_config config(const std::string& device) {
  dit_backend_config c;
  c.world_dir = (std::filesystem::temp_directory_path() / "gfdit-dit-backend-test").string();
  c.world_size = 1;
  c.device = device;
  return c;
}

auto clock_us = [] { return std::int64_t{0}; };

TEST(dit_backend, an_unknown_device_is_a_clear_error) {
  auto b = dit_backend::create(config("tpu"), clock_us);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.err().code, errc::invalid_argument);
  EXPECT_NE(b.err().what.find("device 'tpu' is neither cpu nor gpu"), std::string::npos) << b.err().what;
}

TEST(dit_backend, unknown_gpu_collectives_are_a_clear_error) {
  auto c = config("gpu");
  c.gpu_collectives = "mpi";
  auto b = dit_backend::create(c, clock_us);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.err().code, errc::invalid_argument);
  EXPECT_NE(b.err().what.find("gpu_collectives 'mpi' is neither cuda-ipc nor nccl"), std::string::npos) << b.err().what;
}

TEST(dit_backend, a_gpu_backend_without_a_gpu_says_so) {
  if (dit::gpu_available()) GTEST_SKIP() << "this machine has a CUDA device";
  auto b = dit_backend::create(config("gpu"), clock_us);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.err().code, errc::not_found);
  EXPECT_NE(b.err().what.find("gpu backend: no CUDA device"), std::string::npos) << b.err().what;
}

TEST(dit_backend, a_cpu_backend_of_one_worker_joins_its_world) {
  auto b = dit_backend::create(config("cpu"), clock_us);
  ASSERT_TRUE(b) << b.err().what;
  EXPECT_EQ((*b)->rank(), 0);
  EXPECT_EQ((*b)->held_requests(), 0u);
  std::filesystem::remove_all(config("cpu").world_dir);
}

}  // namespace
}  // namespace gfdit
