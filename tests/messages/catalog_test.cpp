#include <gtest/gtest.h>

#include "messages/catalog.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

TEST(catalog, finds_by_name_and_id_and_lists_schemas_sorted) {
  auto& c = catalog::global();
  const auto* by_name = c.find("system.heartbeat");
  ASSERT_NE(by_name, nullptr);
  EXPECT_EQ(by_name->id, type_id_of<msg::heartbeat>);
  EXPECT_EQ(c.find(by_name->id), by_name);
  EXPECT_EQ(by_name->schema["actor"], "str");
  EXPECT_EQ(by_name->schema["count"], "uint");
  EXPECT_EQ(c.find("no.such.message"), nullptr);
  const auto all = c.list();
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].name, all[i].name);
}

// msgpack writes an integral double (a default 0.0) as an integer; the schema is the C++ type's.
struct with_double {
  static constexpr std::string_view type_name = "test.with_double";
  static constexpr std::uint16_t type_version = 1;
  double ratio = 0.0;
  float scale = 0.0f;
  std::int32_t delta = 0;
  std::uint64_t count = 0;
  GFDIT_FIELDS(ratio, scale, delta, count)
};

TEST(catalog, schemas_show_the_fields_real_types) {
  catalog c;
  ASSERT_TRUE(c.add<with_double>());
  const auto* e = c.find("test.with_double");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->schema["ratio"], "float");
  EXPECT_EQ(e->schema["scale"], "float");
  EXPECT_EQ(e->schema["delta"], "int");  // its default, 0, packs as an unsigned integer
  EXPECT_EQ(e->schema["count"], "uint");
}

TEST(catalog, schemas_describe_nested_messages_and_empty_lists_by_their_types) {
  const auto* e = catalog::global().find("serving.task_assign");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->schema["members"], nlohmann::json::array({"int"}));  // empty by default
  EXPECT_EQ(e->schema["request"]["seed"], "uint");
  EXPECT_EQ(e->schema["request"]["slo_ms"], "float");
  EXPECT_EQ(e->schema["input"]["holders"], nlohmann::json::array({"int"}));
}

TEST(catalog, a_payload_of_the_wrong_shape_renders_as_an_error) {
  const auto* e = catalog::global().find("system.heartbeat");
  ASSERT_NE(e, nullptr);
  // {"count": "not a number"}
  const std::string bad =
      "\x81\xa5"
      "count"
      "\xac"
      "not a number";
  auto r = e->to_json(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("system.heartbeat"), std::string::npos);
}

}  // namespace
}  // namespace gfdit
