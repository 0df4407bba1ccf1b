// Hostile inputs: each is rejected with an error that names what was wrong, never a crash, an
// escaping exception or a large allocation. Run under ASan by `make test` as well.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <chrono>

#include "messages/catalog.hpp"
#include "messages/envelope.hpp"
#include "messages/example.hpp"
#include "messages/json.hpp"

namespace gfdit {
namespace {

std::string bytes(std::initializer_list<int> xs) {
  std::string s;
  for (int x : xs) s.push_back(static_cast<char>(x));
  return s;
}

std::string nested_arrays(std::size_t depth) {
  std::string s(depth, '\x91');  // fixarray of one element, nested
  s.push_back('\x00');
  return s;
}

long max_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

struct hostile_case {
  const char* name;
  std::string frame;
  const char* expect;  // a fragment the error must contain
};

void PrintTo(const hostile_case& c, std::ostream* os) { *os << c.name; }

class hostile_input : public ::testing::TestWithParam<hostile_case> {};

TEST_P(hostile_input, is_rejected_with_a_named_error_and_bounded_memory) {
  const auto& c = GetParam();
  const long before = max_rss_kib();
  auto env = decode_envelope(c.frame);
  ASSERT_FALSE(env) << c.name;
  EXPECT_NE(env.err().what.find(c.expect), std::string::npos) << c.name << ": error was '" << env.err().what << "'";
  auto p = decode<msg::ping>(c.frame);
  ASSERT_FALSE(p) << c.name;
  // Nothing close to the declared sizes was allocated (64 MiB of slack for the allocator).
  EXPECT_LT(max_rss_kib() - before, 64 * 1024) << c.name;
}

const std::string good_ping = encode(msg::ping{1, "hello"});

INSTANTIATE_TEST_SUITE_P(
    table, hostile_input,
    ::testing::Values(hostile_case{"empty", "", "empty frame"},
                      hostile_case{"truncated_frame", good_ping.substr(0, good_ping.size() - 3), "truncated"},
                      hostile_case{"truncated_header", bytes({0xdd, 0xff}), "truncated header"},
                      hostile_case{"array_2pow32_minus_1", bytes({0xdd, 0xff, 0xff, 0xff, 0xff}), "array"},
                      hostile_case{"map_2pow32_minus_1", bytes({0xdf, 0xff, 0xff, 0xff, 0xff}), "map"},
                      hostile_case{"nesting_depth_10000", nested_arrays(10000), "nesting deeper"},
                      hostile_case{"string_declared_2GiB", bytes({0xdb, 0x80, 0x00, 0x00, 0x00, 'x'}), "string"},
                      hostile_case{"binary_declared_4GiB", bytes({0xc6, 0xff, 0xff, 0xff, 0xff}), "binary"},
                      hostile_case{"ext_declared_huge", bytes({0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01}), "extension"},
                      hostile_case{"invalid_type_byte", bytes({0xc1}), "0xc1"},
                      hostile_case{"trailing_garbage", good_ping + "zz", "trailing"},
                      hostile_case{"many_small_arrays_claiming_more_than_present",
                                   bytes({0x93, 0xdc, 0xff, 0xff, 0xdc, 0xff, 0xff}), "truncated array"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(hostile_input, wrong_field_types_name_the_message) {
  // {"count": "x"} where count is an integer.
  const std::string wrong =
      "\x81\xa5"
      "count"
      "\xa1"
      "x";
  auto p = decode<msg::ping>(wrong);
  ASSERT_FALSE(p);
  EXPECT_NE(p.err().what.find("example.ping"), std::string::npos);
  // An envelope whose payload field is a string, not binary.
  const std::string env = "\x82\xa1t\x01\xa1p\xa1z";
  auto e = decode_envelope(env);
  ASSERT_FALSE(e);
  EXPECT_NE(e.err().what.find("payload"), std::string::npos);
  // An envelope that is not a map at all.
  EXPECT_FALSE(decode_envelope(bytes({0x93, 0x01, 0x02, 0x03})));
  // An envelope missing its type id.
  auto m = decode_envelope("\x81\xa1q\x05");
  ASSERT_FALSE(m);
  EXPECT_NE(m.err().what.find("type id"), std::string::npos);
}

TEST(hostile_input, frames_over_the_limit_are_refused_before_parsing) {
  decode_limits lim;
  lim.max_frame = 16;
  auto r = decode_envelope(std::string(17, '\x00'), lim);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::too_large);
}

TEST(hostile_input, every_truncation_of_a_valid_envelope_is_an_error) {
  envelope env;
  env.type_id = type_id_of<msg::ping>;
  env.sender = "s";
  env.destination = "d";
  env.payload = good_ping;
  const auto frame = encode_envelope(env);
  for (std::size_t n = 0; n < frame.size(); ++n) EXPECT_FALSE(decode_envelope(frame.substr(0, n))) << n;
  EXPECT_TRUE(decode_envelope(frame));
}

// Found by fuzz/fuzz_message_decode: msgpack strings carry any bytes, and a map key that is a map
// holding a string that is not UTF-8 made to_json() throw from nlohmann's dump(); a string value
// or a sender of that kind made every later dump() of the JSON throw (topic echo, bag echo --json).
TEST(hostile_input, strings_that_are_not_utf8_render_as_json_that_dumps) {
  const auto frame = bytes({0x83, 0x69, 0xff, 0x81, 0x80, 0xa5, 0xa5, 0xa5, 0xaa, 0xa5, 0xe1, 0x7f, 0x24, 0x80});
  auto h = unpack_bounded(frame);
  ASSERT_TRUE(h) << h.err().what;
  nlohmann::json j;
  ASSERT_NO_THROW(j = to_json(h->get()));
  EXPECT_NO_THROW((void)j.dump());

  EXPECT_EQ(valid_utf8("caf\xc3\xa9 \xe7\x8c\xab \xf0\x9f\x99\x82"), "caf\xc3\xa9 \xe7\x8c\xab \xf0\x9f\x99\x82");
  EXPECT_EQ(valid_utf8("a\xff"
                       "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(valid_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong '/'
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  EXPECT_EQ(valid_utf8("\xe7\x8c"), "\xef\xbf\xbd\xef\xbf\xbd");                  // cut short

  envelope env;
  env.type_id = type_id_of<msg::ping>;
  env.sender = "s\xc3";
  env.destination = "d";
  env.payload = encode(msg::ping{1, "x\xff"});
  nlohmann::json r;
  ASSERT_NO_THROW(r = catalog::global().render(env));
  EXPECT_NO_THROW((void)r.dump());
  EXPECT_EQ(r["sender"], "s\xef\xbf\xbd");
  EXPECT_EQ(r["payload"]["data"], "x\xef\xbf\xbd");
}

// Found by fuzz/fuzz_message_decode (a timeout): each level of maps keyed by maps escaped the
// key below it again, so the JSON doubled with depth. Keys that are not strings are cut short.
TEST(hostile_input, maps_keyed_by_maps_render_in_linear_size) {
  const std::size_t depth = 60;
  const std::string frame =
      std::string(depth, '\x81') + "\xa1x" + std::string(depth, '\xc0');  // {{{..."x": nil...}: nil}: nil}
  auto h = unpack_bounded(frame);
  ASSERT_TRUE(h) << h.err().what;
  const auto t0 = std::chrono::steady_clock::now();
  const auto text = to_json(h->get()).dump();
  EXPECT_LT(text.size(), 1000u) << text.substr(0, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  // Short keys that are not strings still show whole.
  const std::string small_frame = bytes({0x81, 0x07, 0xa1, 'v'});  // {7: "v"}; the handle points into it
  auto small = unpack_bounded(small_frame);
  ASSERT_TRUE(small);
  EXPECT_EQ(to_json(small->get()).dump(), R"({"7":"v"})");
}

}  // namespace
}  // namespace gfdit
