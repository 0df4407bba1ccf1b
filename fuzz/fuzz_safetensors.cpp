// The safetensors reader on a file (it reads by path): header length, JSON header, dtypes,
// shapes and offsets against the bytes present, value conversion; every tensor read must hold
// as many values as its shape says.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.hpp"
#include "kernels/dit/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static gfdit::fuzz::temp_file in(".safetensors");
  auto f = gfdit::dit::read_safetensors(in.write(data, size));
  if (!f) return 0;
  // The reader's promise to every caller that indexes by shape: the values are the shape's.
  for (const auto& [name, t] : f->tensors) {
    std::uint64_t numel = 1;
    for (auto d : t.shape)
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel)) __builtin_trap();
    if (numel != t.values.size()) __builtin_trap();
  }
  return 0;
}
