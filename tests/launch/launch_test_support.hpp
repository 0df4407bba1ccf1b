#pragma once
// Helpers for the launch tests: the gfdit command as a child process with its output in a
// file, temporary folders, and /proc checks.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/free_tcp_port.hpp"

namespace gfdit::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A fresh folder under /tmp, removed with the object.
class temp_dir {
 public:
  temp_dir() {
    char t[] = "/tmp/gfdit-launch-test-XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

// A child with stdout and stderr in one file; killed and reaped at the end.
class process : public child_process {
 public:
  process(std::vector<std::string> argv, std::string log, std::map<std::string, std::string> env = {})
      : child_process(std::move(argv), log, env), log_(std::move(log)) {}
  std::string output() const { return read_file(log_); }
  // Exit status, or -signal; -1000 when still running after `timeout`.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) { return child_process::wait(timeout); }
  // Waits until the output holds `text`.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (output().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  std::string log_;
};

// Runs to completion; returns {status, output}.
inline std::pair<int, std::string> run(std::vector<std::string> argv, const std::string& log,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                       std::map<std::string, std::string> env = {}) {
  process p(std::move(argv), log, std::move(env));
  const int status = p.wait(timeout);
  return {status, p.output()};
}

// True while `pid` names a live (non-zombie) process.
inline bool alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return false;
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// Live processes whose parent is `parent`.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e.path().filename().c_str()));
    if (pid <= 0) continue;
    std::ifstream f(e.path() / "stat");
    std::string stat;
    if (!std::getline(f, stat)) continue;
    const auto close = stat.rfind(')');
    char state = 0;
    int ppid = 0;
    if (close != std::string::npos && std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == parent && state != 'Z')
      out.push_back(pid);
  }
  return out;
}

}  // namespace gfdit::testing
