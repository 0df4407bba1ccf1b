#pragma once
// CRC32C (Castagnoli), the checksum of every bag chunk. SSE4.2's crc32 instruction where the CPU
// has it (checked once at run time), else a slicing-by-8 table; both give the same value.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gfdit {

// Continues `crc` (0 to start) over `n` bytes.
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;
inline std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept {
  return crc32c(bytes.data(), bytes.size(), crc);
}
// The portable path alone (tests compare both paths).
std::uint32_t crc32c_portable(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;
bool crc32c_hardware() noexcept;

}  // namespace gfdit
