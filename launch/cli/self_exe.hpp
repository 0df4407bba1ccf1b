#pragma once
// This program's own path (the model search path starts beside it).
#include <filesystem>

namespace gfdit::launch {

inline std::filesystem::path self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path{} : p;
}

}  // namespace gfdit::launch
