// `cmake --install` gives a package that an out-of-tree plugin builds against with
// find_package(gfdit); the installed gfdit then launches a graph using that plugin.
#include <gtest/gtest.h>

#include "tests/launch/launch_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using gfdit::testing::run;
using gfdit::testing::temp_dir;

TEST(Package, OutOfTreePluginBuildsAgainstTheInstalledPackage) {
  temp_dir d;
  const std::string prefix = d.path() + "/prefix", build = d.path() + "/build";
  auto [s1, install] =
      run({GFDIT_CMAKE, "--install", GFDIT_BINARY_DIR, "--prefix", prefix}, d.path() + "/install.log", 120s);
  ASSERT_EQ(s1, 0) << install;
  auto [s2, configure] = run({GFDIT_CMAKE, "-S", std::string(GFDIT_SOURCE_DIR) + "/examples/custom_actor", "-B", build,
                              "-G", GFDIT_CMAKE_GENERATOR, "-DCMAKE_PREFIX_PATH=" + prefix,
                              "-DCMAKE_CXX_COMPILER=" GFDIT_CXX, "-DCMAKE_BUILD_TYPE=Release"},
                             d.path() + "/configure.log", 120s);
  ASSERT_EQ(s2, 0) << configure;
  auto [s3, compile] = run({GFDIT_CMAKE, "--build", build}, d.path() + "/build.log", 240s);
  ASSERT_EQ(s3, 0) << compile;
  auto [s4, out] =
      run({prefix + "/bin/gfdit", "launch", std::string(GFDIT_SOURCE_DIR) + "/examples/custom_actor/graph.yaml",
           "plugin:=" + build + "/libgfdit_counter_actor.so", "count:=3"},
          d.path() + "/launch.log", 60s);
  EXPECT_EQ(s4, 0) << out;
  EXPECT_NE(out.find("counter: saw 3 message(s) on 'pong', done"), std::string::npos) << out;
}

}  // namespace
