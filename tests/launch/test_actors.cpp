// A plugin of actor types for the launch tests, loaded through `plugins:`.
//   test.crasher  appends a line to `marker` when it activates, then aborts after `after_ms`
//   test.spawner  starts a grandchild that ignores SIGTERM and writes its pid to `marker`
//   test.refuser  fails its configure (a node that dies before its peers ever hear from it)
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "actors/runtime/context.hpp"
#include "actors/runtime/registry.hpp"

extern char** environ;

namespace {

class crasher final : public gfdit::actor {
 public:
  gfdit::result<void> on_configure(gfdit::context& ctx) override {
    if (auto r = ctx.params().declare<std::string>("marker", "", "file to append a line to per start"); !r) return r;
    return ctx.params().declare<std::int64_t>("after_ms", 100, "abort this long after activation");
  }
  gfdit::result<void> on_activate(gfdit::context& ctx) override {
    const auto marker = ctx.params().get<std::string>("marker");
    if (!marker.empty()) std::ofstream(marker, std::ios::app) << "started " << ::getpid() << "\n";
    ctx.after(std::chrono::milliseconds(ctx.params().get<std::int64_t>("after_ms")), [] { std::abort(); });
    return {};
  }
};

class spawner final : public gfdit::actor {
 public:
  gfdit::result<void> on_configure(gfdit::context& ctx) override {
    return ctx.params().declare<std::string>("marker", "", "file to write the grandchild's pid to");
  }
  gfdit::result<void> on_activate(gfdit::context& ctx) override {
    // Ignored signals stay ignored across exec: this sleep survives SIGTERM.
    char sh[] = "/bin/sh", c[] = "-c", cmd[] = "trap '' TERM; exec sleep 1000";
    char* argv[] = {sh, c, cmd, nullptr};
    pid_t pid = -1;
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    const int rc = posix_spawn(&pid, sh, nullptr, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return gfdit::make_error(gfdit::errc::io, "posix_spawn failed");
    std::ofstream(ctx.params().get<std::string>("marker")) << pid << "\n";
    return {};
  }
};

class refuser final : public gfdit::actor {
 public:
  gfdit::result<void> on_configure(gfdit::context&) override {
    return gfdit::make_error(gfdit::errc::invalid_argument, "refused on purpose");
  }
};

}  // namespace

GFDIT_REGISTER_ACTOR(crasher, "test.crasher");
GFDIT_REGISTER_ACTOR(refuser, "test.refuser");
GFDIT_REGISTER_ACTOR(spawner, "test.spawner");
