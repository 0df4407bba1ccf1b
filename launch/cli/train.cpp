// gfdit train --model fashion-dit --steps 2000 --batch 64 --degree 4 --out my-fashion
//   --config DIR instead of --model (a folder whose config.json is the architecture and card),
//   --data DIR (the IDX files), --limit N, --lr, --warmup, --seed, --init-seed, --stop-at N,
//   --checkpoint-every N, --resume (continue the run saved in --out, with its own options).
// The command runs the training graph (launch/graphs/train.yaml, compiled in: a coordinator and
// --degree trainer processes); with --processes it starts --degree copies of itself instead
// (`--rank R --world-dir D`, a file rendezvous), rank 0 printing a line per step and writing the
// checkpoints. The same bytes either way.
// gfdit train --out my-fashion --members 0,2: the running job's next steps are taken by ranks 0
// and 2 only (OUT/members, kernels/train/membership.hpp); the others wait, and rejoin when named.
#include "launch/cli/train.hpp"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include "common/text.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/train/membership.hpp"
#include "kernels/train/reduce.hpp"
#include "kernels/train/run.hpp"
#include "kernels/train/train_log.hpp"
#include "launch/cli/self_exe.hpp"
#include "launch/lib/commands.hpp"
#ifdef GFDIT_WITH_TRAIN_ACTORS
#include "actors/train/train_actor_types.hpp"
#endif

extern char** environ;

namespace gfdit::launch {

namespace {

namespace fs = std::filesystem;

int fail(const std::string& what) {
  std::fprintf(stderr, "gfdit train: %s\n", what.c_str());
  return 2;
}

void print_note(const std::string& note) { std::fprintf(stderr, "gfdit train: %s\n", note.c_str()); }

void print_step(const train::progress& p) {
  std::printf("%s\n", train::progress_text(p.row, p.steps).c_str());
  std::fflush(stdout);
}

// Starts `degree` ranks of this command and waits; when one fails the others are stopped (they
// would wait on it in a collective until the timeout).
int run_ranks(const std::vector<std::string>& args, int degree) {
  char tmpl[] = "/tmp/gfdit-train-XXXXXX";
  if (!::mkdtemp(tmpl)) return fail("cannot create a rendezvous folder in /tmp");
  const std::string exe = self_exe().string();
  std::vector<pid_t> pids;
  for (int r = 0; r < degree; ++r) {
    std::vector<std::string> a = {exe, "train"};
    a.insert(a.end(), args.begin(), args.end());
    a.insert(a.end(), {"--rank", std::to_string(r), "--world-dir", tmpl});
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      for (auto p : pids) ::kill(p, SIGTERM);
      for (auto p : pids) ::waitpid(p, nullptr, 0);
      fs::remove_all(tmpl);
      return fail("cannot start worker " + std::to_string(r));
    }
    pids.push_back(pid);
  }
  int status = 0;
  for (std::size_t left = pids.size(); left > 0; --left) {
    int st = 0;
    const pid_t done = ::waitpid(-1, &st, 0);
    if (done < 0) break;
    const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok && status == 0) {
      status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
      for (auto p : pids)
        if (p != done) ::kill(p, SIGTERM);
    }
  }
  fs::remove_all(tmpl);
  return status;
}

#ifdef GFDIT_WITH_TRAIN_ACTORS
// The training graph (launch/graphs/train.yaml, compiled in) with this command's options, from
// a copy of the file that lives as long as the run; the launcher's output is the progress.
int run_graph(const train::run_options& o, int degree) {
  char tmpl[] = "/tmp/gfdit-train-XXXXXX";
  if (!::mkdtemp(tmpl)) return fail("cannot create a folder in /tmp for the graph's file");
  const fs::path file = fs::path(tmpl) / "train.yaml";
  if (auto r = write_text_atomically(file, train_graph_text()); !r) return fail(r.err().what);
  char lr[32];
  std::snprintf(lr, sizeof lr, "%.9g", static_cast<double>(o.train.adamw.lr));  // every float's digits
  launch_options lo;
  lo.file = file.string();
  lo.args = {"out:=" + o.out.string(),
             "model:=" + fs::absolute(o.model_dir).string(),
             "data:=" + fs::absolute(o.images.parent_path()).string(),
             "limit:=" + std::to_string(o.data_limit),
             "pool:=" + std::to_string(degree),
             "steps:=" + std::to_string(o.train.steps),
             "stop_at:=" + std::to_string(o.stop_at),
             "batch:=" + std::to_string(o.train.batch),
             std::string("lr:=") + lr,
             "warmup:=" + std::to_string(o.train.adamw.warmup),
             "seed:=" + std::to_string(o.train.seed),
             "init_seed:=" + std::to_string(o.train.init_seed),
             std::string("resume:=") + (o.resume ? "true" : "false"),
             "checkpoint_every:=" + std::to_string(o.checkpoint_every)};
  const int status = run_launch(lo);
  fs::remove_all(tmpl);
  return status;
}
#endif

}  // namespace

int train_main(int argc, char** argv) {
  CLI::App app{"gfdit train: train a class-conditional DiT on the CPU, data parallel, into a model folder"};
  std::string model_name = "fashion-dit", config_dir, data_dir = "/usr/share/datasets/fashion-mnist", out, world_dir;
  train::train_options t;
  t.steps = 12000;
  int degree = 1, rank = -1;
  std::int64_t limit = 0, stop_at = 0, every = 1000;
  bool resume = false, processes = false;
  std::vector<std::int32_t> members;
  app.option_defaults()->always_capture_default();  // --help shows the recipe's defaults
  auto* by_name = app.add_option("--model", model_name, "the architecture: a model's name on the model search path");
  app.add_option("--config", config_dir, "a folder whose config.json is the architecture (instead of --model)")
      ->excludes(by_name);
  app.add_option("--out", out, "the model folder to write (config.json, model.safetensors, train_state.safetensors)")
      ->required();
  app.add_flag("--resume", resume, "continue the run saved in --out, with its own options");
  app.add_option("--degree", degree, "data-parallel worker processes (any number up to --batch)")
      ->check(CLI::Range(1, 64));
  app.add_option("--steps", t.steps, "steps of the schedule (warm-up, then cosine to a tenth)")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--stop-at", stop_at, "stop after this step, keeping --steps' schedule (resume later)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", t.batch, "the global batch, split over the workers")->check(CLI::Range(1, 1 << 20));
  app.add_option("--lr", t.adamw.lr, "peak learning rate")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--warmup", t.adamw.warmup, "steps of linear warm-up")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", t.seed, "data order, label dropout, times and noise");
  app.add_option("--init-seed", t.init_seed, "the initial weights");
  app.add_option("--data", data_dir, "a folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz");
  app.add_option("--limit", limit, "train on the first N pictures only")->check(CLI::NonNegativeNumber);
  app.add_option("--checkpoint-every", every, "write the folder every N steps (and at the end; 0: at the end only)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--members", members,
                 "change a running job: only these ranks take its next steps (written to OUT/members; rank 0 "
                 "always)")
      ->delimiter(',')
      ->check(CLI::Range(0, 63));
  app.add_flag("--processes", processes,
               "run the workers as plain processes over a file rendezvous, not as the training graph "
               "(launch/graphs/train.yaml); the same bytes");
  app.add_option("--rank", rank)->group("");  // set on the workers this command starts
  app.add_option("--world-dir", world_dir)->group("");
  CLI11_PARSE(app, argc, argv);

  if (!members.empty()) {
    const std::string plan = train::ranks_text(members);
    if (auto p = train::parse_membership(plan, 64, 1 << 20); !p) return fail("--members: " + p.err().what);
    std::error_code ec;
    fs::create_directories(out, ec);  // a plan may be written before the run starts
    if (auto r = train::write_membership(fs::path(out) / "members", members); !r) return fail(r.err().what);
    std::printf("%s/members: ranks %s from the next step on\n", out.c_str(), plan.c_str());
    return 0;
  }

  train::run_options o;
  o.model_dir = config_dir;
  if (config_dir.empty()) {
    auto dir = dit::find_model(model_name, dit::model_search_path(self_exe()));
    if (!dir) return fail(dir.err().what);
    o.model_dir = *dir;
  }
  o.images = fs::path(data_dir) / "train-images-idx3-ubyte.gz";
  o.labels = fs::path(data_dir) / "train-labels-idx1-ubyte.gz";
  o.data_limit = limit;
  o.train = t;
  o.out = out;
  o.resume = resume;
  o.stop_at = stop_at;
  o.checkpoint_every = every;
  o.members_file = fs::path(out) / "members";

  if (rank >= 0) {  // a worker
    auto r = train::run_worker(o, rank, degree, world_dir, print_step, print_note);
    if (!r) {
      std::fprintf(stderr, "gfdit train (rank %d): %s\n", rank, r.err().what.c_str());
      return 1;
    }
    return 0;
  }

  // Mistakes are found here, before any worker starts.
  auto card = dit::read_model_card(o.model_dir);
  if (!card) return fail(card.err().what);
  if (auto L = train::param_layout::of(card->config); !L) return fail(L.err().what);
  for (const auto& f : {o.images, o.labels})
    if (!fs::exists(f)) return fail(f.string() + " not found (--data; Debian's package dataset-fashion-mnist)");
  const bool saved = fs::exists(fs::path(out) / "train_state.safetensors");
  if (resume && !saved) return fail("--resume: " + out + " holds no training run (no train_state.safetensors)");
  if (!resume && saved) return fail(out + " holds a training run already: pass --resume to continue it");
  if (!resume && !train::tree_splits(t.batch, degree))
    return fail("--degree " + std::to_string(degree) + " cannot split --batch " + std::to_string(t.batch) +
                " (each worker needs at least one sample)");
  // The rest of the checks (the checkpoint's model and data set, steps left) are the workers' own.
  std::int64_t last = 0;
  {
    auto p = train::prepare_run(o, degree);
    if (!p) return fail(p.err().what);
    last = p->last;
  }  // the data and weights it loaded are freed before the workers load their own
  int status = 0;
#ifdef GFDIT_WITH_TRAIN_ACTORS
  if (!processes) {
    status = run_graph(o, degree);
  } else
#endif
  {
    std::vector<std::string> args(argv + 1, argv + argc);
    status = run_ranks(args, degree);
  }
  if (status != 0) return status;
  // A run stopped from outside (Ctrl-C) ends without an error but before its last step.
  auto rows = train::read_log(train::log_path(out));
  const std::int64_t reached = rows && !rows->empty() ? rows->back().step : 0;
  if (reached < last) {
    const bool saved_now = fs::exists(fs::path(out) / "train_state.safetensors");
    std::fprintf(stderr, "gfdit train: stopped at step %lld of %lld; %s\n", static_cast<long long>(reached),
                 static_cast<long long>(last),
                 saved_now ? ("gfdit train --out " + out + " --resume continues from its last checkpoint").c_str()
                           : "no checkpoint was written yet (one every --checkpoint-every steps)");
    return 1;
  }
  std::printf("wrote %s (loss curve: %s/loss.svg): gfdit generate --weights %s --prompt ...\n", out.c_str(),
              out.c_str(), out.c_str());
  return 0;
}

}  // namespace gfdit::launch
