#include "launch/cli/replay_replace.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "bag/bag_reader.hpp"
#include "common/text.hpp"
#include "launch/lib/commands.hpp"
#include "launch/lib/control.hpp"
#include "launch/lib/launch_file.hpp"
#include "messages/catalog.hpp"

namespace gfdit {
namespace {
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

int fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  return 2;
}

// The `gfdit` executable: it runs the graph's nodes, which need every built-in actor type.
std::string find_gfdit(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* e = std::getenv("GFDIT_EXE"); e && *e) return e;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    if (self.filename() == "gfdit") return self.string();
    // gfdit-bag beside gfdit (installed, and in the build tree), or a program two folders below
    // the build tree's root.
    for (const fs::path& p : {self.parent_path() / "gfdit", self.parent_path() / "../../launch/cli/gfdit"})
      if (::access(p.c_str(), X_OK) == 0) return fs::weakly_canonical(p, ec).string();
  }
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string dir; std::getline(ss, dir, ':');) {
      const fs::path p = fs::path(dir.empty() ? "." : dir) / "gfdit";
      if (::access(p.c_str(), X_OK) == 0) return p.string();
    }
  }
  return {};
}

// Each sender's messages in the order it sent them (its seq). Markers ("$handled") are not
// messages of an actor, nor are its timer ticks (sent to itself): a live run interleaves
// those with its inputs as the clock falls.
result<std::map<std::string, std::vector<envelope>>> by_sender(const std::string& path) {
  auto r = bag::reader::open(path);
  if (!r) return r.err();
  std::map<std::string, std::vector<envelope>> out;
  while (true) {
    auto n = (*r)->next();
    if (!n) return n.err();
    if (!*n) break;
    envelope& env = (*n)->env;
    if (env.sender.empty() || env.sender[0] == '$') continue;
    if (env.kind == route::direct && env.destination == env.sender) continue;
    out[env.sender].push_back(std::move(env));
  }
  for (auto& [_, v] : out)
    std::stable_sort(v.begin(), v.end(), [](const envelope& a, const envelope& b) { return a.seq < b.seq; });
  return out;
}

// What an actor decided, without the stamps (when it ran, not what it did) and without its seq
// (which counts the ticks left out).
// `ignore`: payload fields (at any depth) left out, such as wall-clock times.
void erase_fields(nlohmann::json& j, const std::set<std::string>& ignore) {
  if (j.is_object())
    for (auto it = j.begin(); it != j.end();) {
      if (ignore.count(it.key())) {
        it = j.erase(it);
      } else {
        erase_fields(*it, ignore);
        ++it;
      }
    }
  else if (j.is_array())
    for (auto& e : j) erase_fields(e, ignore);
}

bool same(const envelope& a, const envelope& b, const std::set<std::string>& ignore) {
  if (a.type_id != b.type_id || a.version != b.version || a.kind != b.kind || a.destination != b.destination ||
      a.correlation != b.correlation)
    return false;
  if (a.payload == b.payload) return true;
  if (ignore.empty()) return false;
  auto ja = catalog::global().render(a), jb = catalog::global().render(b);
  if (!ja.contains("payload") || !jb.contains("payload")) return false;  // not decodable: bytes decide
  erase_fields(ja["payload"], ignore);
  erase_fields(jb["payload"], ignore);
  return ja["payload"] == jb["payload"];
}

std::string meta_string(const bag::header& h, const char* key) {
  return h.meta.is_object() ? h.meta.value(key, std::string()) : std::string();
}

nlohmann::json show(const envelope* env) {
  if (!env) return nullptr;
  auto j = catalog::global().render(*env);
  for (const char* k : {"logical", "wall_ns", "trace_id", "sender"}) j.erase(k);
  return j;
}

// Runs `gfdit launch FILE --control ENDPOINT` as a child (the launcher validates the graph with
// every actor type the gfdit executable has built in) and stops it, through that endpoint, once
// every player has written its done file and `linger` has passed, or at `timeout`. SIGINT and
// SIGTERM to this process stop the launch the same way. Returns the launcher's exit status.
int launch_and_stop(const std::string& exe, const std::string& file, const std::string& control,
                    const std::vector<std::string>& done_files, std::chrono::milliseconds linger,
                    std::chrono::milliseconds timeout, std::string& reason) {
  sigset_t set, old;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGCHLD}) sigaddset(&set, s);
  ::sigprocmask(SIG_BLOCK, &set, &old);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // this tool killed: the launcher stops the graph
    if (::getppid() != parent) ::_exit(127);
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    std::vector<std::string> args = {exe, "launch", file, "--control", control};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "error: cannot run %s: %s\n", exe.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  if (pid < 0) {
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    std::fprintf(stderr, "error: fork: %s\n", std::strerror(errno));
    return 2;
  }
  const auto start = steady::now();
  std::optional<steady::time_point> all_done;
  bool asked = false;
  int status = 0;
  while (true) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    const timespec tick{0, 50'000'000};
    const int sig = ::sigtimedwait(&set, nullptr, &tick);
    const auto now = steady::now();
    if (sig == SIGINT || sig == SIGTERM) {
      // From a terminal the launcher got the SIGINT too; a second one would kill at once.
      ::kill(pid, SIGTERM);
      reason = std::string("SIG") + sigabbrev_np(sig);
      asked = true;
    }
    if (asked) continue;
    if (!all_done && std::all_of(done_files.begin(), done_files.end(), [](const std::string& f) {
          std::error_code ec;
          return fs::exists(f, ec);
        }))
      all_done = now;
    const bool played = all_done && now - *all_done >= linger;
    if (!played && now - start < timeout) continue;
    // Fails while the launcher is not serving yet: asked again on the next round.
    if (launch::ask_launcher(control, {{"cmd", "stop"}}, std::chrono::milliseconds(1000))) {
      reason = played ? "the players finished" : "timeout after " + std::to_string(timeout.count() / 1000) + " s";
      asked = true;
    }
  }
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct work_folder {
  std::string path;
  bool remove = false;
  ~work_folder() {
    std::error_code ec;
    if (remove && !path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

int replay_replace(const replace_options& o) {
  const std::set<std::string> replaced(o.replace.begin(), o.replace.end());
  const std::string replaced_list = join({replaced.begin(), replaced.end()});
  if (replaced.empty()) return fail("--replace names no actor");
  auto rd = bag::reader::open(o.bag);
  if (!rd) return fail(rd.err().what);
  const bag::header& head = (*rd)->head();
  const bag::index& ix = (*rd)->idx();
  std::error_code ec;
  const std::string bag_path = fs::absolute(o.bag, ec).lexically_normal().string();

  work_folder work;
  if (o.work_dir.empty()) {
    char t[] = "/tmp/gfdit-replace-XXXXXX";
    if (!::mkdtemp(t)) return fail("cannot create a work folder under /tmp");
    work.path = t;
    work.remove = true;
  } else {
    work.path = fs::absolute(o.work_dir, ec).lexically_normal().string();
    fs::create_directories(work.path, ec);
    if (ec) return fail("cannot create '" + work.path + "': " + ec.message());
  }

  // The graph: --launch, else the recorded text; from its own file when that still holds the
  // same text, so $(dirname) and includes resolve as they did when it was recorded.
  std::string file = o.launch_file;
  if (file.empty()) {
    if (head.launch.empty())
      return fail("bag '" + o.bag +
                  "' holds no launch-file text (the recorder's launch_file or launch_text "
                  "parameter puts it in the header): pass --launch FILE");
    const std::string recorded_file = meta_string(head, "launch_file");
    if (!recorded_file.empty() && read_text(recorded_file) == head.launch) {
      file = recorded_file;
    } else {
      file = work.path + "/recorded.yaml";
      std::ofstream(file) << head.launch;
      std::fprintf(stderr, "replay: the bag's launch text is in %s (its $(dirname) is that folder)\n", file.c_str());
    }
  }
  auto g = launch::load(file, o.args);
  if (!g) return fail(g.err().what);

  std::map<std::string, launch::actor_spec*> actors;
  for (auto& i : g->instances)
    for (auto& a : i.actors) actors[a.name] = &a;
  for (const auto& name : replaced) {
    auto it = actors.find(name);
    if (it == actors.end()) {
      std::vector<std::string> names;
      for (const auto& [n, _] : actors) names.push_back(n);
      return fail("no actor '" + name + "' in graph '" + g->name + "' (actors: " + join(names) + ")");
    }
    if (it->second->type == "gfdit.recorder" || it->second->type == "gfdit.player")
      return fail("'" + name + "' is a " + it->second->type + ": replace the actors it plays or records, not it");
    if (!ix.senders.count(name))
      std::fprintf(stderr, "replay: warning: the bag holds no message sent by '%s': its player sends nothing\n",
                   name.c_str());
  }

  // Players in place of the replaced actors: same name (what is directed to A reaches its
  // player) and same process (the recorder that made the bag sees what it saw).
  std::vector<std::string> topics;
  for (const auto& [t, _] : ix.topics) topics.push_back(t);
  std::vector<std::string> done_files;
  for (const auto& name : replaced) {
    auto& a = *actors[name];
    done_files.push_back(work.path + "/done-" + name + ".json");
    fs::remove(done_files.back(), ec);
    a.type = "gfdit.player";
    a.params = {{"path", bag_path},
                {"senders", name},
                {"rate", o.rate},
                {"gate", o.gate},
                {"gate_timeout_ms", o.gate_timeout_ms},
                {"subscribe", join(topics, ",")},
                {"done_file", done_files.back()}};
    a.param_marks.clear();
    a.remaps.clear();  // the bag holds the graph's topic names already
  }

  // The recorder that made the bag records the replay (same place, same filter); the others
  // are switched off, so no recorder overwrites a bag it wrote when recording.
  const std::string recorder = meta_string(head, "recorder");
  const std::string replay_bag = work.path + "/replay.bag";
  fs::remove(replay_bag, ec);
  bool compared = false;
  for (auto& i : g->instances)
    for (auto& a : i.actors) {
      if (a.type != "gfdit.recorder") continue;
      if (a.name == recorder && !compared) {
        a.params["path"] = replay_bag;
        a.params["launch_file"] = "";
        a.params["launch_text"] = "";
        compared = true;
      } else {
        a.params["path"] = "";
      }
      // A player cannot keep its runtime from answering a parameter request with its own
      // parameters; the recorded answer is in the bag, the player sends it.
      if (a.params.contains("parameters_of") && a.params["parameters_of"].is_string()) {
        std::vector<std::string> keep;
        for (const auto& n : bag::filter::split(a.params["parameters_of"].get<std::string>()))
          if (!replaced.count(n)) keep.push_back(n);
        a.params["parameters_of"] = join(keep, ",");
      }
    }
  if (!compared && meta_string(head, "source") == "subscribe") {
    // A bag of `gfdit bag record` (a tool node subscribed to every topic): the same, as a process.
    launch::instance_spec inst;
    inst.process = inst.node = "replay-recorder";
    launch::actor_spec a;
    a.type = "gfdit.recorder";
    a.name = recorder.empty() ? "bag-recorder" : recorder;
    a.params = {{"path", replay_bag}, {"source", "subscribe"}};
    const auto f =
        head.meta.is_object() ? head.meta.value("filter", nlohmann::json::object()) : nlohmann::json::object();
    for (const char* k : {"topics", "actors", "senders", "types"})
      if (f.contains(k) && f[k].is_array()) a.params[k] = join(f[k].get<std::vector<std::string>>(), ",");
    inst.actors.push_back(std::move(a));
    g->instances.push_back(std::move(inst));
    compared = true;
  }
  if (!compared)
    std::fprintf(stderr,
                 "replay: warning: recorder '%s' that made the bag is not in the graph: outputs are not compared\n",
                 recorder.c_str());

  std::map<std::string, std::string> type_of;  // the replay's graph
  for (const auto& i : g->instances)
    for (const auto& a : i.actors) type_of[a.name] = a.type;

  auto flat = launch::to_flat_yaml(*g);
  if (!flat) return fail(flat.err().what);
  const std::string flat_file = work.path + "/replay.yaml";
  if (!(std::ofstream(flat_file) << *flat)) return fail("cannot write '" + flat_file + "'");

  const std::string control = "ipc://" + work.path + "/launch.ctl";
  const std::string exe = find_gfdit(o.gfdit_exe);
  if (exe.empty())
    return fail("cannot find the gfdit executable that runs the nodes: pass --gfdit PATH or set GFDIT_EXE");
  std::fprintf(stderr, "replay: graph '%s' from %s with %s replaced by players of %s (rate %g)\n", g->name.c_str(),
               file.c_str(), replaced_list.c_str(), o.bag.c_str(), o.rate);
  const double bag_s = static_cast<double>(ix.last_ns - ix.first_ns) / 1e9;
  const double timeout_s = o.timeout_s > 0 ? o.timeout_s : (o.rate > 0 ? bag_s / o.rate : 0) + 30;
  std::string reason;
  const int launch_rc = launch_and_stop(exe, flat_file, control, done_files,
                                        std::chrono::milliseconds(static_cast<long>(o.linger_s * 1000)),
                                        std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)), reason);

  // The players' own account.
  std::printf("\nreplay of %s with %s replaced: graph '%s' stopped (%s), launcher exit %d\n", o.bag.c_str(),
              replaced_list.c_str(), g->name.c_str(), reason.empty() ? "by itself" : reason.c_str(), launch_rc);
  for (std::size_t k = 0; k < done_files.size(); ++k) {
    auto text = read_text(done_files[k]);
    auto j = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (j.is_object())
      std::printf("  player %s: played %llu, held for their cause %llu, gate timeouts %llu, inputs %llu\n",
                  j.value("actor", std::string()).c_str(), j.value("played", 0ULL), j.value("gated", 0ULL),
                  j.value("gate_timeouts", 0ULL), j.value("inputs", 0ULL));
    else
      std::printf("  player of %s: did not finish\n", fs::path(done_files[k]).stem().string().substr(5).c_str());
  }
  if (launch_rc == 2) return fail("the replay's graph did not launch (the launcher's output above says why)");
  if (!compared) return launch_rc == 0 ? 0 : 1;
  if (std::error_code e; !fs::exists(replay_bag, e))
    return fail("recorder '" + recorder + "' wrote no bag: the graph did not run (see above)");

  // Every actor's outputs, replay against recording, as the same recorder saw them.
  auto expected = by_sender(o.bag);
  if (!expected) return fail(expected.err().what);
  auto actual = by_sender(replay_bag);
  if (!actual) return fail("the replay's bag: " + actual.err().what);
  const std::set<std::string> ignore(o.ignore_fields.begin(), o.ignore_fields.end());
  std::set<std::string> senders;
  for (const auto& [s, _] : *expected) senders.insert(s);
  for (const auto& [s, _] : *actual) senders.insert(s);
  std::printf("  %-24s %-7s %9s %9s  %s\n", "actor", "role", "recorded", "replayed", "result");
  int diverged = 0;
  std::uint64_t total = 0;
  std::vector<nlohmann::json> firsts;
  const std::vector<envelope> none;
  for (const auto& s : senders) {
    auto t = type_of.find(s);
    if (t == type_of.end() || t->second == "gfdit.recorder") continue;  // tools, recorders
    const auto& e = expected->count(s) ? expected->at(s) : none;
    const auto& r = actual->count(s) ? actual->at(s) : none;
    std::size_t i = 0;
    while (i < e.size() && i < r.size() && same(e[i], r[i], ignore)) ++i;
    const bool ok = i == e.size() && i == r.size();
    std::printf("  %-24s %-7s %9zu %9zu  %s\n", s.c_str(), replaced.count(s) ? "player" : "live", e.size(), r.size(),
                ok ? "identical" : ("diverges at output " + std::to_string(i)).c_str());
    total += e.size();
    if (ok) continue;
    ++diverged;
    firsts.push_back({{"actor", s},
                      {"index", i},
                      {"expected", show(i < e.size() ? &e[i] : nullptr)},
                      {"actual", show(i < r.size() ? &r[i] : nullptr)}});
  }
  for (const auto& f : firsts) std::printf("%s\n", f.dump().c_str());
  if (diverged)
    std::printf("diverged: %d actor(s) did not send what they sent in the recording\n", diverged);
  else
    std::printf("identical: every actor sent what it sent in the recording (%llu messages)\n",
                static_cast<unsigned long long>(total));
  if (!o.work_dir.empty()) std::printf("replay bag: %s\n", replay_bag.c_str());
  return diverged || launch_rc != 0 ? 1 : 0;
}

}  // namespace gfdit
