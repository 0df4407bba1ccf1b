// gfdit profile --model fashion-dit [--model NAME=DIR ...] --device cpu|gpu --degrees 1,2,4 --out P.yaml
// Times every stage of each model on real worker backends (actors/worker/stage_profiler.hpp),
// fits the cost model's coefficients (actors/serving/profile_fit.hpp) and writes one profile
// file: `profiles: P.yaml` in a launch file or `gfdit sim --profiles P.yaml` reads it.
#include "launch/cli/profile.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "actors/serving/profile_fit.hpp"
#include "actors/worker/stage_profiler.hpp"
#include "kernels/dit/model_card.hpp"
#include "launch/cli/self_exe.hpp"

namespace gfdit::launch {

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "gfdit profile: %s\n", what.c_str());
  return 2;
}

// NAME=DIR, or a NAME looked up on the model search path.
result<std::pair<std::string, std::string>> model_arg(const std::string& arg) {
  if (const auto eq = arg.find('='); eq != std::string::npos) {
    if (eq == 0 || eq + 1 == arg.size())
      return make_error(errc::invalid_argument, "--model '" + arg + "': write NAME=DIR or a model's name");
    return std::pair{arg.substr(0, eq), arg.substr(eq + 1)};
  }
  auto found = dit::find_model(arg, dit::model_search_path(self_exe()));
  if (!found) return found.err();
  return std::pair{arg, found->string()};
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

}  // namespace

int profile_main(int argc, char** argv) {
  CLI::App app{"gfdit profile: measure served models' stages on this machine and write their cost profile"};
  std::vector<std::string> models;
  std::string out = "profile.yaml", machine;
  stage_profile_options o;
  int timeout_s = 60;
  app.add_option("--model", models, "a model's name on the model search path, or NAME=DIR (repeat for several)")
      ->required();
  app.add_option("--device", o.device, "cpu or gpu (one GPU per rank)")->check(CLI::IsMember({"cpu", "gpu"}));
  app.add_option("--gpu-collectives", o.gpu_collectives, "cuda-ipc (one node) or nccl")
      ->check(CLI::IsMember({"cuda-ipc", "nccl"}));
  app.add_option("--degrees", o.degrees,
                 "Ulysses degrees to measure (those the model or machine cannot take are noted)")
      ->delimiter(',');
  app.add_option("--steps", o.steps, "denoising steps in the timed chunk")->check(CLI::Range(1, 1000));
  app.add_option("--reps", o.reps, "requests per degree (the profile takes medians)")->check(CLI::Range(1, 100));
  app.add_option("--timeout", timeout_s, "seconds a collective may wait for a peer")->check(CLI::Range(1, 3600));
  app.add_option("--machine", machine, "what ran it, for the file's header (e.g. 'one H100 80GB')");
  app.add_option("--out", out, "the profile file to write");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.collective_timeout = std::chrono::seconds(timeout_s);
  o.progress = [](const std::string& line) { std::fprintf(stderr, "gfdit profile: %s\n", line.c_str()); };

  std::string yaml = "# Measured by `gfdit profile` on " + today() + (machine.empty() ? "" : ", " + machine) +
                     ", device " + o.device + ": " + std::to_string(o.reps) + " requests a degree, a chunk of " +
                     std::to_string(o.steps) +
                     " steps timed after a warm-up chunk, medians.\n# step(d) = a_us + bp_us*tokens/d + "
                     "alpha_us*(d-1) (actors/serving/profile_fit.hpp).\nmodels:\n";
  int profiled = 0;
  for (const auto& arg : models) {
    auto m = model_arg(arg);
    if (!m) return fail(m.err().what);
    const auto& [name, dir] = *m;
    std::fprintf(stderr, "gfdit profile: %s (%s) on %s, degrees", name.c_str(), dir.c_str(), o.device.c_str());
    for (auto d : o.degrees) std::fprintf(stderr, " %d", d);
    std::fprintf(stderr, "\n");
    auto measured = measure_stages(name, dir, o);
    if (!measured) {
      // One model that cannot be measured does not cost the others theirs.
      std::fprintf(stderr, "gfdit profile: %s: %s\n", name.c_str(), measured.err().what.c_str());
      yaml += "  # " + name + ": not measured: " + measured.err().what + "\n";
      continue;
    }
    auto p = fit_profile(*measured);
    if (!p) return fail(p.err().what);
    for (const auto& n : measured->notes) yaml += "  # " + name + ": " + n + "\n";
    for (const auto& d : measured->degrees) {
      char line[256];
      std::snprintf(line, sizeof line, "  # %s degree %d: prepare %.1f us, step %.1f us, decode %.1f us", name.c_str(),
                    d.degree, d.prepare_us, d.step_us, d.decode_us);
      yaml += line;
      if (d.reshard_us >= 0) {
        std::snprintf(line, sizeof line, ", move onto the group %.1f us", d.reshard_us);
        yaml += line;
      }
      yaml += "\n";
    }
    yaml += profile_yaml(*p);
    ++profiled;
  }
  if (!profiled) return fail("no model could be measured; nothing written");
  std::ofstream f(out, std::ios::trunc);
  if (!(f << yaml)) return fail("cannot write " + out);
  std::fprintf(stderr, "gfdit profile: wrote %s (%d model%s)\n", out.c_str(), profiled, profiled == 1 ? "" : "s");
  return 0;
}

}  // namespace gfdit::launch
