#pragma once
// Starts N real worker processes, one per rank (posix_spawn), and waits for them with a
// deadline, killing the rest if it passes, so a broken collective fails a test instead of
// hanging CI. Each runs `<exe> <scenario> <rank> <n> <dir> <extra...>`, where dir is a fresh
// folder for the run (its rendezvous), removed afterwards.
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

namespace gfdit::testing {

struct exit_status {
  bool exited = false;
  int code = -1;   // when exited
  int signal = 0;  // when killed
};

// A worker binary: $env_var, else `name` next to this test binary (a copied bundle), else
// `built_at` (where the build put it).
inline std::string worker_binary(const char* env_var, const char* name, const char* built_at) {
  if (const char* e = std::getenv(env_var)) return e;
  std::error_code ec;
  const auto here = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / name;
  if (!ec && std::filesystem::exists(here)) return here.string();
  return built_at;
}

inline std::vector<exit_status> run_ranks(const std::string& exe, const std::string& scenario, int n,
                                          const std::vector<std::string>& extra, std::chrono::seconds limit) {
  static int counter = 0;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("gfdit-ranks-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  const auto n_ranks = static_cast<std::size_t>(n);
  std::vector<pid_t> pids(n_ranks, -1);
  for (std::size_t r = 0; r < n_ranks; ++r) {
    std::vector<std::string> args = {exe, scenario, std::to_string(r), std::to_string(n), dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pids[r], exe.c_str(), nullptr, nullptr, argv.data(), environ) != 0) pids[r] = -1;
  }
  std::vector<exit_status> out(n_ranks);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int left = 0;
  for (auto p : pids) left += p > 0;
  while (left > 0) {
    for (std::size_t r = 0; r < n_ranks; ++r) {
      auto& p = pids[r];
      if (p <= 0) continue;
      int st = 0;
      if (::waitpid(p, &st, WNOHANG) == p) {
        out[r].exited = WIFEXITED(st);
        out[r].code = out[r].exited ? WEXITSTATUS(st) : -1;
        out[r].signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        p = -1;
        --left;
      }
    }
    if (left > 0 && std::chrono::steady_clock::now() > deadline) {
      for (auto& p : pids)
        if (p > 0) {
          ::kill(p, SIGKILL);
          ::waitpid(p, nullptr, 0);
          p = -1;
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace gfdit::testing
