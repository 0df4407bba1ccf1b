#include "actors/sim/sim_main.hpp"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "actors/scheduler/policy.hpp"
#include "actors/sim/simulator.hpp"
#include "actors/sim/sweep.hpp"
#include "common/text.hpp"

namespace gfdit::sim {

int sim_main(int argc, char** argv) {
  CLI::App app{"gfdit sim: the serving control plane in virtual time"};
  std::string workload_path, policy = "edf-best-fit", compare, faults_spec, json_path, profiles;
  sim_options opt;
  bool do_sweep = false, list = false, quiet = false;
  double target = 0.9;
  std::int64_t sweep_requests = 0;
  app.add_option("--workload,-w", workload_path, "workload YAML (launch/workloads/*.yaml)");
  app.add_option("--policy,-p", policy, "scheduling policy (name or name:arg)");
  app.add_option("--gpus,-n", opt.gpus, "simulated GPUs")->check(CLI::Range(1, 4096));
  app.add_option("--seed,-s", opt.seed, "seed (default: the workload's)");
  app.add_option("--faults,-f", faults_spec, "faults: a YAML file, or deaths=N,recover_s=S,delay_prob=P,delay_ms=M");
  app.add_option("--compare,-c", compare, "comma-separated policies, side by side");
  app.add_flag("--sweep", do_sweep, "find the highest load each policy sustains at the target");
  app.add_option("--target", target, "SLO attainment the sweep must keep")->check(CLI::Range(0.0, 1.0));
  app.add_option("--sweep-requests", sweep_requests, "requests per sweep probe (default: the workload's)");
  app.add_option("--json,-j", json_path, "write metrics as JSON here ('-' for stdout)");
  app.add_option("--load", opt.load, "override the workload's load (fraction of capacity)");
  app.add_option("--requests", opt.requests, "override the workload's request count");
  app.add_option("--chunk-steps", opt.chunk_steps, "override the denoising steps per task");
  app.add_option("--queue", opt.admission_queue, "override admission's bound on outstanding requests");
  app.add_option("--profiles", profiles, "extra cost profiles (YAML/JSON) over the stock ones");
  app.add_flag("--check", opt.check_invariants, "check the scheduler's invariants after every event");
  app.add_flag("--list", list, "list policies and models, then exit");
  app.add_flag("--quiet,-q", quiet, "print nothing but errors (use with --json)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  cost_model costs = cost_model::stock();
  if (!profiles.empty()) {
    const auto text = read_text(profiles);
    if (!text) {
      std::cerr << "gfdit sim: cannot read " << profiles << "\n";
      return 1;
    }
    if (auto r = costs.merge_yaml(*text); !r) {
      std::cerr << "gfdit sim: " << r.err().what << "\n";
      return 1;
    }
  }
  if (list) {
    std::cout << "policies:";
    for (auto& p : policy_names()) std::cout << " " << p;
    std::cout << "\nmodels:";
    for (auto& m : costs.models()) std::cout << " " << m;
    std::cout << "\n";
    return 0;
  }
  if (workload_path.empty()) {
    std::cerr << "gfdit sim: --workload is required\n";
    return 1;
  }
  auto w = load_workload(workload_path);
  if (!w) {
    std::cerr << "gfdit sim: " << w.err().what << "\n";
    return 1;
  }
  if (!faults_spec.empty()) {
    auto f = parse_faults(faults_spec);
    if (!f) {
      std::cerr << "gfdit sim: " << f.err().what << "\n";
      return 1;
    }
    opt.fault = *f;
  }
  std::vector<std::string> policies;
  if (compare.empty()) {
    policies.push_back(policy);
  } else {
    std::stringstream ss(compare);
    for (std::string p; std::getline(ss, p, ',');)
      if (!p.empty()) policies.push_back(p);
  }

  std::vector<run_metrics> runs;
  nlohmann::json j;
  j["runs"] = nlohmann::json::array();
  bool broken = false;
  for (const auto& p : policies) {
    sim_options o = opt;
    o.policy = p;
    const auto t0 = std::chrono::steady_clock::now();
    auto m = simulate(*w, o, costs);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!m) {
      std::cerr << "gfdit sim: " << m.err().what << "\n";
      return 1;
    }
    if (!m->invariant_violation.empty()) {
      std::cerr << "gfdit sim: invariant broken under " << p << ": " << m->invariant_violation << "\n";
      broken = true;
    }
    if (!quiet)
      std::cout << fmt::format(
          "{}: {} requests, {} GPUs, offered {:.4f} req/s (load {:.2f}), {:.0f} s virtual in {:.2f} s wall\n", p,
          m->arrived, m->gpus, m->offered_rate_rps, m->offered_load, m->makespan_s, wall);
    j["runs"].push_back(m->to_json());
    runs.push_back(std::move(*m));
  }
  if (!quiet) std::cout << "\n" << format_table(runs);

  if (do_sweep) {
    std::vector<sweep_result> sw;
    j["sweep"] = nlohmann::json::array();
    for (const auto& p : policies) {
      sim_options o = opt;
      o.policy = p;
      o.requests = sweep_requests > 0 ? sweep_requests : opt.requests;
      auto s = sweep(*w, o, costs, target);
      if (!s) {
        std::cerr << "gfdit sim: " << s.err().what << "\n";
        return 1;
      }
      nlohmann::json sj{{"policy", p},
                        {"target", target},
                        {"sustainable_load", s->sustainable_load},
                        {"sustainable_rate_rps", s->sustainable_rate_rps}};
      for (const auto& pt : s->probes)
        sj["probes"].push_back(
            {{"load", pt.load}, {"rate_rps", pt.rate_rps}, {"attainment", pt.attainment}, {"keep_up", pt.keep_up}});
      j["sweep"].push_back(sj);
      sw.push_back(std::move(*s));
    }
    if (!quiet) {
      std::cout << fmt::format(
          "\nload sweep: highest load with SLO attainment >= {:.0f}% that the cluster keeps up with\n", target * 100);
      std::cout << fmt::format("{:<16} {:>12} {:>14} {:>10}\n", "policy", "load", "rate (req/s)", "ratio");
      for (const auto& s : sw)
        std::cout << fmt::format(
            "{:<16} {:>12.3f} {:>14.5f} {:>10}\n", s.policy, s.sustainable_load, s.sustainable_rate_rps,
            sw[0].sustainable_rate_rps > 0 ? fmt::format("{:.2f}x", s.sustainable_rate_rps / sw[0].sustainable_rate_rps)
                                           : std::string(s.sustainable_rate_rps > 0 ? "inf" : "-"));
    }
  }
  if (!json_path.empty()) {
    const std::string text = j.dump(2) + "\n";
    if (json_path == "-") {
      std::cout << text;
    } else {
      std::ofstream out(json_path);
      out << text;
      if (!out) {
        std::cerr << "gfdit sim: cannot write " << json_path << "\n";
        return 1;
      }
    }
  }
  return broken ? 2 : 0;
}

}  // namespace gfdit::sim
