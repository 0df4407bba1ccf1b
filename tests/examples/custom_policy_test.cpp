// examples/custom_policy: the separately built library registers its policy when loaded, and
// the simulator runs it like a built-in, to the end of a workload, with every request finished.
#include <gtest/gtest.h>

#include "actors/runtime/plugin_loader.hpp"
#include "actors/scheduler/policy.hpp"
#include "actors/sim/simulator.hpp"
#include "actors/sim/workload.hpp"

namespace gfdit {
namespace {

TEST(custom_policy, the_plugin_registers_its_policy_and_the_simulator_runs_it) {
  EXPECT_FALSE(make_policy("widest-first"));  // unknown before the plugin loads
  auto p = load_plugin(GFDIT_POLICY_PLUGIN);
  ASSERT_TRUE(p) << p.err().what;
  auto pol = make_policy("widest-first");
  ASSERT_TRUE(pol) << pol.err().what;
  EXPECT_EQ((*pol)->name(), "widest-first");

  auto w = sim::load_workload(GFDIT_SOURCE_DIR "/launch/workloads/image-mix.yaml");
  ASSERT_TRUE(w) << w.err().what;
  sim::sim_options opt;
  opt.policy = "widest-first";
  opt.gpus = 8;
  opt.requests = 200;
  opt.check_invariants = true;
  auto m = sim::simulate(*w, opt);
  ASSERT_TRUE(m) << m.err().what;
  EXPECT_EQ(m->arrived, 200);
  EXPECT_EQ(m->unfinished, 0);
  EXPECT_EQ(m->invariant_violation, "");
  EXPECT_EQ(m->done + m->rejected + m->cancelled + m->failed, 200);
  EXPECT_GT(m->done, 0);
}

}  // namespace
}  // namespace gfdit
