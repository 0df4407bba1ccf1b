// `gfdit launch`: runs every process instance of a graph as a child process on this host,
// wired over ipc in a per-run folder; merges their logs, applies restart policies, serves the
// control endpoint, and stops everything on SIGINT/SIGTERM (SIGTERM, then SIGKILL).
//
// No orphans: each child leads its own process group (killpg reaches anything it spawned),
// dies with the launcher (PR_SET_PDEATHSIG), and the launcher is a child subreaper, so a
// grandchild whose parent died is reparented here and killed at the end.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "launch/lib/commands.hpp"
#include "launch/lib/control.hpp"
#include "launch/lib/endpoints.hpp"
#include "launch/lib/graph_keys.hpp"
#include "launch/lib/launch_file.hpp"

extern char** environ;

namespace gfdit::launch {
namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

std::string runs_folder() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/gfdit-" + std::to_string(::getuid());
}

result<std::string> private_runs_folder() {
  std::error_code ec;
  fs::create_directories(runs_folder(), ec);
  // A folder another user owns or may write could swap our announcement for one of theirs.
  struct stat st {};
  if (::stat(runs_folder().c_str(), &st) != 0 || st.st_uid != ::getuid() || (st.st_mode & 022))
    return make_error(errc::state, runs_folder() + " must be a folder of this user that others cannot write");
  return runs_folder();
}

void sweep_runs_folder() {
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(runs_folder(), ec)) {
    const std::string name = f.path().filename().string();
    const std::size_t prefix = name.rfind("launch-", 0) == 0 ? 7 : name.rfind("node-", 0) == 0 ? 5 : 0;
    if (prefix == 0 || (f.path().extension() != ".json" && f.path().extension() != ".token")) continue;
    const pid_t pid = static_cast<pid_t>(std::atoi(name.c_str() + prefix));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(f.path(), ec);
  }
}

namespace {

// This user's announcement of the launcher serving `endpoint`; an empty object when none.
nlohmann::json announcement_for(const std::string& endpoint) {
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(runs_folder(), ec)) {
    if (f.path().extension() != ".json") continue;
    std::ifstream in(f.path());
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("control", std::string()) == endpoint) return j;
  }
  return nlohmann::json::object();
}

}  // namespace

std::string control_token_for(const std::string& endpoint) {
  if (auto t = read_control_token(announcement_for(endpoint).value("token_file", std::string()))) return *t;
  if (const char* file = std::getenv("GFDIT_CONTROL_TOKEN"); file && *file)
    if (auto t = read_control_token(file)) return *t;
  return {};
}

result<nlohmann::json> ask_launcher(const std::string& endpoint, const nlohmann::json& request,
                                    std::chrono::milliseconds timeout) {
  const nlohmann::json announced = announcement_for(endpoint);
  const std::string keys = announced.value("keys", std::string());
  std::optional<control_curve> curve;
  if (!keys.empty()) {
    auto k = read_tool_key(keys);
    if (!k) return k.err();
    // A launcher serves with the operator pair, a `gfdit node` with its own (its "server_key").
    const auto server = announced.value("server_key", std::string(operator_key_name));
    curve = control_curve{k->curve.own, {}, k->curve.accepted.public_of(server)};
  }
  return control_request(endpoint, request, timeout, control_token_for(endpoint), curve ? &*curve : nullptr);
}

namespace {
// Every child learns the run folder from this variable (actors/serving/request_journal.cpp reads it).
constexpr const char* run_dir_env = "GFDIT_RUN_DIR";
// How many times the launcher restarted the process before this life (its metrics say so).
constexpr const char* restarts_env = "GFDIT_RESTARTS";

std::string describe_status(int status) {
  if (status >= 0) return "exited with status " + std::to_string(status);
  const char* name = sigdescr_np(-status);
  const char* abbrev = sigabbrev_np(-status);
  return "killed by signal " + std::to_string(-status) + " (SIG" + (abbrev ? abbrev : "?") + ": " +
         (name ? name : "?") + ")";
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

void say(const std::string& line) { write_all(2, "[launch] " + line + "\n"); }

struct child {
  const instance_spec* spec = nullptr;
  endpoint_plan plan;
  enum class phase { waiting, running, restarting, done, failed, stopped } state = phase::waiting;
  pid_t pid = -1;
  int starts = 0;
  int restarts = 0;
  int last_status = 0;
  bool killed = false;  // needed SIGKILL at shutdown
  clock::time_point restart_at;
  int fd[2] = {-1, -1};    // stdout, stderr read ends
  std::string partial[2];  // an unfinished line per stream
};

const char* phase_name(child::phase p) {
  switch (p) {
    case child::phase::waiting:
      return "waiting";
    case child::phase::running:
      return "running";
    case child::phase::restarting:
      return "restarting";
    case child::phase::done:
      return "done";
    case child::phase::failed:
      return "failed";
    case child::phase::stopped:
      return "stopped";
  }
  return "?";
}

class launcher {
 public:
  launcher(const launch_options& opt, graph_spec g) : opt_(opt), g_(std::move(g)) {}

  int run() {
    self_ = opt_.self.empty() ? fs::read_symlink("/proc/self/exe").string() : opt_.self;
    char tmpl[] = "/tmp/gfdit-run-XXXXXX";
    if (!::mkdtemp(tmpl)) return say(std::string("cannot create a run folder: ") + std::strerror(errno)), 1;
    run_dir_ = tmpl;
    int rc = run_in_folder();
    std::error_code ec;
    fs::remove_all(run_dir_, ec);
    if (!run_file_.empty()) fs::remove(run_file_, ec);
    if (!token_file_.empty()) fs::remove(token_file_, ec);
    return rc;
  }

 private:
  int run_in_folder() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);  // before any thread (ZeroMQ's) starts
    sigfd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    auto plans = plan_endpoints(g_, wiring::ipc, run_dir_);
    if (!plans) return say(plans.err().what), 1;
    for (std::size_t i = 0; i < g_.instances.size(); ++i) {
      child c;
      c.spec = &g_.instances[i];
      c.plan = (*plans)[i];
      children_.push_back(std::move(c));
    }
    // The port is announced to all; the token only to this user (0600 file).
    std::error_code ec;
    if (auto f = private_runs_folder(); !f) return say(f.err().what), 1;
    token_file_ = runs_folder() + "/launch-" + std::to_string(::getpid()) + ".token";
    fs::remove(token_file_, ec);  // a dead launcher's with our pid
    auto token = make_control_token(token_file_);
    if (!token) return token_file_.clear(), say(token.err().what), 1;
    // A keyed graph's launcher speaks CURVE too, with the operator pair (the tools' key).
    std::optional<control_curve> curve;
    if (!g_.security.keys.empty()) {
      auto own = read_key_pair(fs::path(g_.security.keys) / (std::string(operator_key_name) + ".key"));
      auto ring = read_key_ring(g_.security.keys);
      if (!own || !ring)
        return say(g_.security.keys_at.str() + ": the launcher serves its control endpoint with the folder's '" +
                   operator_key_name + "' pair (gfdit keys make DIR " + operator_key_name +
                   "): " + (own ? ring.err() : own.err()).what),
               1;
      curve = control_curve{*own, *ring, {}};
    }
    auto server = control_server::bind(opt_.control, *token, curve ? &*curve : nullptr);
    if (!server) return say(server.err().what), 1;
    control_ = std::move(*server);
    announce();
    say("graph '" + g_.name + "': " + std::to_string(children_.size()) + " process(es), control " +
        control_->endpoint() + ", run folder " + run_dir_);
    for (auto& c : children_) start(c);
    loop();
    reap_strays();
    return summary();
  }

  void announce() {
    std::error_code ec;
    fs::create_directories(runs_folder(), ec);
    sweep_runs_folder();
    run_file_ = runs_folder() + "/launch-" + std::to_string(::getpid()) + ".json";
    std::ofstream f(run_file_);
    f << nlohmann::json{{"pid", ::getpid()},         {"graph", g_.name},
                        {"file", g_.file},           {"control", control_->endpoint()},
                        {"token_file", token_file_}, {"keys", g_.security.keys},
                        {"run_dir", run_dir_}}
             .dump()
      << "\n";
  }

  void start(child& c) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      say("pipe: " + std::string(std::strerror(errno)));
      c.state = child::phase::failed;
      failed_ = true;
      return;
    }
    std::vector<std::string> args = {
        self_,       "node",  g_.file, "--process", c.spec->process, "--index", std::to_string(c.spec->index),
        "--ipc-dir", run_dir_};
    for (const auto& a : opt_.args) args.push_back(a);
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      const std::string k = kv.substr(0, kv.find('='));
      if (!c.spec->env.count(k) && k != run_dir_env && k != restarts_env) env.push_back(kv);
    }
    for (const auto& [k, v] : c.spec->env) env.push_back(k + "=" + v);
    // Files that must outlive a restart of the process (admission's journal) go here.
    env.push_back(std::string(run_dir_env) + "=" + run_dir_);
    env.push_back(std::string(restarts_env) + "=" + std::to_string(c.restarts));
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the launcher died before prctl took effect
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      const char msg[] = "gfdit launch: exec of the gfdit executable failed\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) {
      ::close(out[0]);
      ::close(err[0]);
      say("fork: " + std::string(std::strerror(errno)));
      c.state = child::phase::failed;
      failed_ = true;
      return;
    }
    ::setpgid(pid, pid);  // also here: whichever runs first, the group exists before a killpg
    c.pid = pid;
    c.fd[0] = out[0];
    c.fd[1] = err[0];
    for (int fd : c.fd) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    c.state = child::phase::running;
    ++c.starts;
  }

  // Reads what is there; at EOF closes the stream. Whole lines go out prefixed.
  void pump(child& c, int which) {
    char buf[65536];
    while (c.fd[which] >= 0) {
      const ssize_t n = ::read(c.fd[which], buf, sizeof buf);
      if (n > 0) {
        c.partial[which].append(buf, static_cast<std::size_t>(n));
        emit(c, which, false);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      emit(c, which, true);
      ::close(c.fd[which]);
      c.fd[which] = -1;
    }
  }

  void emit(child& c, int which, bool all) {
    std::string out;
    std::string& p = c.partial[which];
    std::size_t start = 0;
    for (std::size_t nl; (nl = p.find('\n', start)) != std::string::npos; start = nl + 1)
      out += "[" + c.plan.node + "] " + p.substr(start, nl - start + 1);
    p.erase(0, start);
    if (all && !p.empty()) {
      out += "[" + c.plan.node + "] " + p + "\n";
      p.clear();
    }
    if (!out.empty()) write_all(which == 0 ? 1 : 2, out);
  }

  void on_exit(child& c, int status) {
    pump(c, 0);
    pump(c, 1);
    for (int& fd : c.fd)
      if (fd >= 0) {  // a grandchild still holds the pipe: what it writes later is lost
        ::close(fd);
        fd = -1;
      }
    c.pid = -1;
    c.last_status = status;
    if (stopping_) {
      c.state = child::phase::stopped;
      return;
    }
    if (status == 0) {
      c.state = child::phase::done;
      if (c.spec->exit_on_done) {
        say("process '" + c.plan.node + "' finished (exit_on_done): stopping the graph");
        done_by_ = c.plan.node;
        begin_stop();
      } else {
        say("process '" + c.plan.node + "' finished");
      }
      return;
    }
    const auto& r = c.spec->restart;
    if (r.policy == restart_policy::kind::on_failure && c.restarts < r.max) {
      const long delay = std::min<long>(30000, static_cast<long>(r.backoff_ms) << std::min(c.restarts, 20));
      ++c.restarts;
      c.state = child::phase::restarting;
      c.restart_at = clock::now() + std::chrono::milliseconds(delay);
      say("process '" + c.plan.node + "' " + describe_status(status) + ": restart " + std::to_string(c.restarts) + "/" +
          std::to_string(r.max) + " in " + std::to_string(delay) + " ms");
      return;
    }
    c.state = child::phase::failed;
    std::string why = r.policy == restart_policy::kind::never ? "restart policy is 'never'"
                                                              : "gave up after " + std::to_string(c.restarts) +
                                                                    " restart(s) (max: " + std::to_string(r.max) + ")";
    if (!c.spec->essential) {
      // Survivable (a worker): the others carry on, the summary names it.
      lost_.push_back(c.plan.node);
      say("process '" + c.plan.node + "' failed: " + describe_status(status) + "; " + why +
          "; not essential: the graph goes on without it");
      return;
    }
    failed_ = true;
    say("ERROR: process '" + c.plan.node + "' failed: " + describe_status(status) + "; " + why +
        "; essential: stopping the graph");
    begin_stop();
  }

  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = clock::now() + std::chrono::milliseconds(opt_.stop_timeout_ms);
    for (auto& c : children_) {
      if (c.pid > 0)
        ::killpg(c.pid, SIGTERM);
      else if (c.state == child::phase::restarting || c.state == child::phase::waiting)
        c.state = child::phase::stopped;
    }
  }

  void reap() {
    while (true) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      const int s = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      for (auto& c : children_)
        if (c.pid == pid) on_exit(c, s);
      // Anything else was a reparented grandchild: reaped, nothing to report.
    }
  }

  bool any_running() const {
    for (const auto& c : children_)
      if (c.pid > 0) return true;
    return false;
  }

  bool all_finished() const {
    for (const auto& c : children_)
      if (c.state == child::phase::running || c.state == child::phase::restarting || c.state == child::phase::waiting)
        return false;
    return true;
  }

  nlohmann::json handle(const nlohmann::json& req) {
    const std::string cmd = req.value("cmd", "");
    if (cmd == "graph") {
      auto procs = nlohmann::json::array();
      for (const auto& c : children_)
        procs.push_back({{"node", c.plan.node},
                         {"process", c.spec->process},
                         {"index", c.spec->index},
                         {"pid", c.pid},
                         {"state", phase_name(c.state)},
                         {"starts", c.starts},
                         {"endpoint", c.plan.connect},
                         {"control", c.plan.control}});
      return {{"ok", true},        {"graph", g_.name},         {"file", g_.file},
              {"pid", ::getpid()}, {"keys", g_.security.keys}, {"processes", procs}};
    }
    if (cmd == "actors" || cmd == "topics") {
      auto nodes = nlohmann::json::array();
      for (const auto& c : children_) {
        nlohmann::json entry = {{"node", c.plan.node}, {"pid", c.pid}, {"state", phase_name(c.state)}};
        if (c.pid > 0) {
          auto r = control_request(c.plan.control, {{"cmd", cmd}}, std::chrono::milliseconds(1000));
          if (r)
            entry.update(*r);
          else
            entry["error"] = r.err().what;
        }
        entry.erase("ok");
        nodes.push_back(entry);
      }
      return {{"ok", true}, {"graph", g_.name}, {"nodes", nodes}};
    }
    if (cmd == "stop") {
      say("stop asked through the control endpoint");
      begin_stop();
      return {{"ok", true}};
    }
    return {{"ok", false}, {"error", "unknown command '" + cmd + "' (graph, actors, topics, stop)"}};
  }

  void loop() {
    while (true) {
      if (stopping_ && !any_running()) break;
      if (!stopping_ && all_finished()) break;
      std::vector<zmq_pollitem_t> items;
      items.push_back({nullptr, sigfd_, ZMQ_POLLIN, 0});
      items.push_back({control_->socket(), 0, ZMQ_POLLIN, 0});
      std::vector<std::pair<child*, int>> owners;
      for (auto& c : children_)
        for (int w = 0; w < 2; ++w)
          if (c.fd[w] >= 0) {
            items.push_back({nullptr, c.fd[w], ZMQ_POLLIN, 0});
            owners.push_back({&c, w});
          }
      long timeout = 100;
      const auto now = clock::now();
      for (const auto& c : children_)
        if (c.state == child::phase::restarting)
          timeout = std::min<long>(
              timeout,
              std::max<long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(c.restart_at - now).count()));
      (void)zmq_poll(items.data(), static_cast<int>(items.size()), timeout);

      if (items[0].revents & ZMQ_POLLIN) {
        signalfd_siginfo si;
        while (::read(sigfd_, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGCHLD) continue;
          if (!stopping_) {
            say(std::string("SIG") + sigabbrev_np(static_cast<int>(si.ssi_signo)) + ": stopping the graph");
            interrupted_ = true;
            begin_stop();
          } else if (si.ssi_signo == SIGINT) {
            say("second SIGINT: killing every process now");
            stop_deadline_ = clock::now();
          }
        }
      }
      for (std::size_t i = 0; i < owners.size(); ++i)
        if (items[i + 2].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) pump(*owners[i].first, owners[i].second);
      reap();
      if (items[1].revents & ZMQ_POLLIN) control_->serve_one([this](const nlohmann::json& r) { return handle(r); }, 0);
      if (!stopping_)
        for (auto& c : children_)
          if (c.state == child::phase::restarting && clock::now() >= c.restart_at) {
            say("restarting process '" + c.plan.node + "'");
            start(c);
          }
      if (stopping_ && clock::now() >= stop_deadline_)
        for (auto& c : children_)
          if (c.pid > 0 && !c.killed) {
            say("process '" + c.plan.node + "' did not stop in time: SIGKILL");
            ::killpg(c.pid, SIGKILL);
            c.killed = true;
          }
    }
  }

  // Children of this (subreaper) process that are none of ours: grandchildren orphaned by a
  // dead child. Kill and reap them so nothing outlives the launch.
  void reap_strays() {
    const pid_t me = ::getpid();
    for (int round = 0; round < 3; ++round) {
      std::vector<pid_t> strays;
      if (DIR* d = ::opendir("/proc")) {
        while (dirent* e = ::readdir(d)) {
          const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
          if (pid <= 0) continue;
          std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
          std::string stat;
          std::getline(f, stat);
          const auto close = stat.rfind(')');
          if (close == std::string::npos) continue;
          char state = 0;
          int ppid = 0;
          if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == me) strays.push_back(pid);
        }
        ::closedir(d);
      }
      if (strays.empty()) return;
      for (pid_t p : strays) ::kill(p, SIGKILL);
      for (pid_t p : strays) ::waitpid(p, nullptr, 0);
    }
  }

  int summary() {
    std::string out = "graph '" + g_.name + "': ";
    out += failed_             ? "FAILED"
           : !done_by_.empty() ? "done ('" + done_by_ + "' finished)"
           : interrupted_      ? "stopped by signal"
                               : "all processes finished";
    if (!lost_.empty()) {
      out += " (went on without";
      for (const auto& n : lost_) out += " '" + n + "'";
      out += ")";
    }
    out += "\n";
    char line[256];
    std::snprintf(line, sizeof line, "  %-20s %-10s %-7s %s\n", "process", "state", "starts", "last exit");
    out += line;
    bool killed = false;
    for (const auto& c : children_) {
      killed = killed || c.killed;
      std::snprintf(line, sizeof line, "  %-20s %-10s %-7d %s%s\n", c.plan.node.c_str(), phase_name(c.state), c.starts,
                    c.starts ? describe_status(c.last_status).c_str() : "never started",
                    c.killed ? " (after SIGKILL)" : "");
      out += line;
    }
    write_all(1, out);
    return failed_ || killed ? 1 : 0;
  }

  launch_options opt_;
  graph_spec g_;
  std::string self_;
  std::string run_dir_;
  std::string run_file_;
  std::string token_file_;
  int sigfd_ = -1;
  std::unique_ptr<control_server> control_;
  std::vector<child> children_;
  bool stopping_ = false;
  bool failed_ = false;
  bool interrupted_ = false;
  std::vector<std::string> lost_;  // non-essential processes given up on
  std::string done_by_;
  clock::time_point stop_deadline_;
};

}  // namespace

int run_launch(const launch_options& opt) {
  auto g = load_and_validate(opt.file, opt.args);
  if (!g) {
    std::fprintf(stderr, "%s\n", g.err().what.c_str());
    return 2;
  }
  if (g->instances.empty()) {
    std::fprintf(stderr, "%s: the graph has no processes\n", opt.file.c_str());
    return 2;
  }
  return launcher(opt, std::move(*g)).run();
}

int run_check(const std::string& file, const std::vector<std::string>& args) {
  auto g = load_and_validate(file, args);
  if (!g) {
    std::fprintf(stderr, "%s\n", g.err().what.c_str());
    return 2;
  }
  std::printf("graph '%s' (%zu process instance(s)) is valid\n", g->name.c_str(), g->instances.size());
  for (const auto& i : g->instances) {
    std::printf("  %s%s%s\n", i.node.c_str(), i.exit_on_done ? " (exit_on_done)" : "",
                i.essential ? "" : " (not essential)");
    for (const auto& a : i.actors)
      std::printf("    %s: %s %s\n", a.name.c_str(), a.type.c_str(), a.params.dump().c_str());
  }
  return 0;
}

}  // namespace gfdit::launch
