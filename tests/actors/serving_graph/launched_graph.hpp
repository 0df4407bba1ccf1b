#pragma once
// A graph as `gfdit launch` runs it, for the tests that drive a stock launch file over HTTP:
// its own folder (its name is in every node's command line, through the arguments), the
// launcher's merged log, SIGINT at the end (SIGKILL if it does not stop), and the pid of any
// of its nodes (to kill one).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

namespace gfdit::testing {

class launched_graph {
 public:
  // A fresh folder named after `what`; start() launches once the caller wrote what it needs.
  explicit launched_graph(const std::string& what)
      : dir_(std::filesystem::temp_directory_path() /
             ("gfdit-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(++count_))) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~launched_graph() {
    if (launcher_) {
      launcher_->signal(SIGINT);
      if (launcher_->wait(std::chrono::seconds(20)) == -1000) launcher_->signal(SIGKILL);
    }
    std::filesystem::remove_all(dir_);
  }
  launched_graph(const launched_graph&) = delete;
  launched_graph& operator=(const launched_graph&) = delete;

  // `gfdit launch FILE ARGS...`, its output in graph.log.
  void start(const std::string& file, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {GFDIT_EXE, "launch", file};
    argv.insert(argv.end(), args.begin(), args.end());
    launcher_ = std::make_unique<child_process>(argv, (dir_ / "graph.log").string());
  }

  // The launcher's exit status once the graph ends by itself (-1000 past the timeout).
  int wait(std::chrono::seconds timeout) {
    const int status = launcher_->wait(timeout);
    if (status != -1000) launcher_.reset();
    return status;
  }

  const std::filesystem::path& dir() const { return dir_; }
  std::string log() const {
    std::ifstream in(dir_ / "graph.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // The pid of process `process` (replica `index`) of this graph, -1 when none runs.
  pid_t node_pid(const std::string& process, int index = 0) const {
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      std::ifstream in(e.path() / "cmdline");
      std::string cmd(std::istreambuf_iterator<char>(in), {});
      for (auto& ch : cmd)
        if (ch == '\0') ch = ' ';
      if (cmd.find(" node ") != std::string::npos &&
          cmd.find("--process " + process + " --index " + std::to_string(index) + " ") != std::string::npos &&
          cmd.find(dir_.string()) != std::string::npos)
        return static_cast<pid_t>(std::stoi(e.path().filename().string()));
    }
    return -1;
  }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<child_process> launcher_;
  static inline int count_ = 0;
};

}  // namespace gfdit::testing
