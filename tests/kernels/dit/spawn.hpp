#pragma once
// Starts N real DiT worker processes (posix_spawn) with a deadline, killing the rest if it
// passes, so a broken collective fails the test instead of hanging CI.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace gfdit::dit::testing {

struct exit_status {
  bool exited = false;
  int code = -1;
  int signal = 0;
};

// $GFDIT_DIT_WORKER, else next to this test binary (a copied bundle), else where the build put it.
inline std::string worker_path() {
  if (const char* e = std::getenv("GFDIT_DIT_WORKER")) return e;
  std::error_code ec;
  const auto here = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "gfdit_dit_worker";
  if (!ec && std::filesystem::exists(here)) return here.string();
  return GFDIT_DIT_WORKER;
}

// Runs `<worker> <scenario> <rank> <n> <dir> <extra...>` for each rank.
inline std::vector<exit_status> run_workers(const std::string& scenario, int n, const std::vector<std::string>& extra,
                                            std::chrono::seconds limit) {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("gfdit-dit-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  const std::string exe = worker_path();
  std::vector<pid_t> pids(static_cast<std::size_t>(n), -1);
  for (int r = 0; r < n; ++r) {
    std::vector<std::string> args = {exe, scenario, std::to_string(r), std::to_string(n), dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pids[static_cast<std::size_t>(r)], exe.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
      pids[static_cast<std::size_t>(r)] = -1;
  }
  std::vector<exit_status> out(static_cast<std::size_t>(n));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int left = 0;
  for (auto p : pids) left += p > 0;
  while (left > 0) {
    for (int r = 0; r < n; ++r) {
      auto& p = pids[static_cast<std::size_t>(r)];
      if (p <= 0) continue;
      int st = 0;
      if (::waitpid(p, &st, WNOHANG) == p) {
        auto& o = out[static_cast<std::size_t>(r)];
        o.exited = WIFEXITED(st);
        o.code = o.exited ? WEXITSTATUS(st) : -1;
        o.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        p = -1;
        --left;
      }
    }
    if (left > 0 && std::chrono::steady_clock::now() > deadline) {
      for (auto& p : pids)
        if (p > 0) { ::kill(p, SIGKILL); ::waitpid(p, nullptr, 0); p = -1; }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace gfdit::dit::testing
