#include <gtest/gtest.h>

#include "actors/runtime/param_checks.hpp"
#include "actors/runtime/parameters.hpp"

namespace gfdit {
namespace {

TEST(parameters, declared_defaults_are_typed_and_validated) {
  parameters p;
  ASSERT_TRUE(p.declare<std::int64_t>("rate", 10, "per second",
                                      [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; }));
  ASSERT_TRUE(p.declare<std::string>("mode", "fast"));
  ASSERT_TRUE(p.declare<double>("gain", 1.5));
  ASSERT_TRUE(p.declare<bool>("on", true));
  EXPECT_EQ(p.get<std::int64_t>("rate"), 10);
  EXPECT_EQ(p.get<std::string>("mode"), "fast");
  EXPECT_FALSE(p.declare<std::int64_t>("rate", 3));  // twice
  auto bad_default =
      p.declare<std::int64_t>("neg", -1, "", [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; });
  ASSERT_FALSE(bad_default);
  EXPECT_NE(bad_default.err().what.find("must be > 0"), std::string::npos);
}

TEST(parameters, set_rejects_wrong_types_and_invalid_values_and_keeps_the_old_value) {
  parameters p;
  ASSERT_TRUE(
      p.declare<std::int64_t>("rate", 10, "", [](const std::int64_t& v) { return v > 0 ? "" : "must be > 0"; }));
  auto wrong_type = p.set("rate", "fast");
  ASSERT_FALSE(wrong_type);
  EXPECT_NE(wrong_type.err().what.find("expected int"), std::string::npos);
  auto invalid = p.set("rate", -5);
  ASSERT_FALSE(invalid);
  EXPECT_NE(invalid.err().what.find("must be > 0"), std::string::npos);
  EXPECT_EQ(p.get<std::int64_t>("rate"), 10);
  auto unknown = p.set("nope", 1);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.err().code, errc::not_found);
  int seen = 0;
  p.watch("rate", [&](const nlohmann::json& v) { seen = v.get<int>(); });
  ASSERT_TRUE(p.set("rate", 42));
  EXPECT_EQ(p.get<std::int64_t>("rate"), 42);
  EXPECT_EQ(seen, 42);
  EXPECT_EQ(p.describe()["rate"]["default"], 10);
  EXPECT_EQ(p.values()["rate"], 42);
}

TEST(parameters, an_integer_is_accepted_where_a_double_is_declared) {
  parameters p;
  ASSERT_TRUE(p.declare<double>("gain", 1.5));
  ASSERT_TRUE(p.set("gain", 2));
  EXPECT_EQ(p.get<double>("gain"), 2.0);
  EXPECT_FALSE(p.set("gain", true));
}

TEST(parameters, the_shared_checks_accept_their_range_and_name_it_otherwise) {
  parameters p;
  ASSERT_TRUE(p.declare<std::int64_t>("steps", 4, "", checks::above<std::int64_t>(0)));
  ASSERT_TRUE(p.declare<std::int64_t>("gpu", -1, "", checks::at_least<std::int64_t>(-1)));
  ASSERT_TRUE(p.declare<std::int64_t>("nice", 0, "", checks::within<std::int64_t>(0, 19)));
  ASSERT_TRUE(p.declare<double>("rate", 1.0, "", checks::at_least(0.0)));
  ASSERT_TRUE(p.declare<std::string>("backend", "sim", "", checks::one_of({"sim", "cpu", "gpu"})));
  const auto refused = [&](const std::string& name, const nlohmann::json& v, const std::string& reason) {
    auto r = p.set(name, v);
    ASSERT_FALSE(r) << name << " = " << v;
    EXPECT_NE(r.err().what.find(reason), std::string::npos) << r.err().what;
  };
  refused("steps", 0, "must be > 0");
  refused("gpu", -2, "must be >= -1");
  refused("nice", 20, "must be in [0, 19]");
  refused("rate", -0.5, "must be >= 0");
  refused("backend", "tpu", "must be 'sim', 'cpu' or 'gpu'");
  EXPECT_TRUE(p.set("steps", 1));
  EXPECT_TRUE(p.set("gpu", -1));
  EXPECT_TRUE(p.set("nice", 19));
  EXPECT_TRUE(p.set("rate", 0.0));
  EXPECT_TRUE(p.set("backend", "gpu"));
  EXPECT_EQ(p.get<std::string>("backend"), "gpu");
  EXPECT_EQ(p.get<std::int64_t>("steps"), 1);
}

}  // namespace
}  // namespace gfdit
