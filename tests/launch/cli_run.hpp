#pragma once
// A gfdit command run as a user runs it: a real process, its output (stdout and stderr) kept.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

#ifndef GFDIT_EXE
#error "GFDIT_EXE must name the gfdit binary"
#endif

namespace gfdit::testing {

struct run_result {
  int status = 0;
  std::string output;
  double seconds = 0;
};

inline run_result run(std::vector<std::string> args, const std::filesystem::path& dir, int timeout_s = 120) {
  args.insert(args.begin(), GFDIT_EXE);
  const std::filesystem::path log = dir / "log.txt";
  const auto t0 = std::chrono::steady_clock::now();
  child_process p(args, log.string(), {{"GFDIT_MODELS", ""}});
  run_result r;
  r.status = p.wait(std::chrono::seconds(timeout_s));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  r.output = ss.str();
  return r;
}

inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

}  // namespace gfdit::testing
