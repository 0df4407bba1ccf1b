#include <gtest/gtest.h>
#include <limits>

#include "messages/catalog.hpp"
#include "messages/envelope.hpp"
#include "messages/example.hpp"
#include "messages/system.hpp"

namespace gfdit {
namespace {

// Every registered message survives encode -> decode -> encode with identical bytes.
TEST(codec, every_registered_message_round_trips) {
  const auto entries = catalog::global().list();
  ASSERT_GE(entries.size(), 11u);
  for (const auto& e : entries) {
    // The schema comes from a default value: re-rendering its bytes must be accepted.
    EXPECT_FALSE(e.schema.is_null()) << e.name;
    EXPECT_EQ(e.id, fnv1a32(e.name)) << e.name;
  }
  msg::ping p{42, std::string(1000, 'x')};
  auto back = decode<msg::ping>(encode(p));
  ASSERT_TRUE(back) << back.err().what;
  EXPECT_EQ(back->count, 42u);
  EXPECT_EQ(back->data, p.data);
  EXPECT_EQ(encode(*back), encode(p));

  msg::node_hello h{.node = "n1", .endpoint = "ipc:///tmp/n1", .actors = {"a", "b"}, .topics = {"t1"}};
  auto hb = decode<msg::node_hello>(encode(h));
  ASSERT_TRUE(hb);
  EXPECT_EQ(hb->actors, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(hb->endpoint, "ipc:///tmp/n1");
  EXPECT_EQ(encode(*hb), encode(h));

  msg::delivery_failure f{"x", 7, 9, 11, "gone"};
  auto fb = decode<msg::delivery_failure>(encode(f));
  ASSERT_TRUE(fb);
  EXPECT_EQ(encode(*fb), encode(f));
}

TEST(codec, every_catalog_entry_renders_its_default_value) {
  for (const auto& e : catalog::global().list()) {
    // Build a default payload through the schema's own type: encode an empty map and check
    // that a reader of an older version with no fields still decodes (fields default).
    const std::string empty_map("\x80", 1);
    auto j = e.to_json(empty_map);
    EXPECT_TRUE(j) << e.name << ": " << (j ? "" : j.err().what);
  }
}

TEST(codec, envelope_round_trips_every_field) {
  envelope env;
  env.type_id = type_id_of<msg::ping>;
  env.version = 1;
  env.seq = 123456789;
  env.sender = "pinger";
  env.destination = "ponger";
  env.kind = route::reply;
  env.time = {77, -5};
  env.trace_id = 0xdeadbeefcafeull;
  env.correlation = 99;
  env.payload = encode(msg::ping{3, "abc"});
  const auto frame = encode_envelope(env);
  auto back = decode_envelope(frame);
  ASSERT_TRUE(back) << back.err().what;
  EXPECT_EQ(back->type_id, env.type_id);
  EXPECT_EQ(back->version, env.version);
  EXPECT_EQ(back->seq, env.seq);
  EXPECT_EQ(back->sender, env.sender);
  EXPECT_EQ(back->destination, env.destination);
  EXPECT_EQ(back->kind, env.kind);
  EXPECT_EQ(back->time.logical, 77u);
  EXPECT_EQ(back->time.wall_ns, -5);
  EXPECT_EQ(back->trace_id, env.trace_id);
  EXPECT_EQ(back->correlation, 99u);
  EXPECT_EQ(back->payload, env.payload);
  EXPECT_EQ(encode_envelope(*back), frame);
  auto p = open<msg::ping>(*back);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->data, "abc");
  EXPECT_FALSE(open<msg::pong>(*back));
}

// A newer writer adds a field; an older reader skips it. An older writer omits one; the newer
// reader keeps the default.
struct ping_v2 {
  static constexpr std::string_view type_name = "example.ping";
  static constexpr std::uint16_t type_version = 2;
  std::uint64_t count = 0;
  std::string data;
  double extra = 0;
  MSGPACK_DEFINE_MAP(count, data, extra)
};

TEST(codec, map_encoding_tolerates_added_and_missing_fields) {
  auto old_reads_new = decode<msg::ping>(encode(ping_v2{5, "d", 2.5}));
  ASSERT_TRUE(old_reads_new);
  EXPECT_EQ(old_reads_new->count, 5u);
  EXPECT_EQ(old_reads_new->data, "d");
  auto new_reads_old = decode<ping_v2>(encode(msg::ping{6, "e"}));
  ASSERT_TRUE(new_reads_old);
  EXPECT_EQ(new_reads_old->count, 6u);
  EXPECT_EQ(new_reads_old->extra, 0.0);
}

// GFDIT_FIELDS writes MSGPACK_DEFINE_MAP's bytes and reads them as msgpack-c does: keys in any
// order, the first of two equal keys wins, absent fields keep their defaults, and a key that
// is not a string is a type error (so decode refuses the payload).
struct ping_msgpack_c {
  std::uint64_t count = 0;
  std::string data;
  double extra = 0;
  MSGPACK_DEFINE_MAP(count, data, extra)
};
struct ping_gfdit {
  static constexpr std::string_view type_name = "test.ping_gfdit";
  static constexpr std::uint16_t type_version = 1;
  std::uint64_t count = 0;
  std::string data;
  double extra = 0;
  GFDIT_FIELDS(count, data, extra)
};

std::string packed(const auto& v) {
  msgpack::sbuffer b;
  msgpack::pack(b, v);
  return {b.data(), b.size()};
}

TEST(codec, gfdit_fields_read_and_write_as_msgpack_c_does) {
  EXPECT_EQ(packed(ping_gfdit{7, "xy", 0.5}), packed(ping_msgpack_c{7, "xy", 0.5}));

  // Reordered, duplicated and unknown keys, one field absent.
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_map(4);
  pk.pack(std::string("extra"));
  pk.pack(1.25);
  pk.pack(std::string("other"));
  pk.pack(9);
  pk.pack(std::string("extra"));
  pk.pack(2.5);
  pk.pack(std::string("count"));
  pk.pack(3);
  const std::string bytes(b.data(), b.size());
  auto ours = decode<ping_gfdit>(bytes);
  ASSERT_TRUE(ours);
  auto h = msgpack::unpack(bytes.data(), bytes.size());
  const auto theirs = h.get().as<ping_msgpack_c>();
  EXPECT_EQ(ours->count, 3u);
  EXPECT_EQ(ours->extra, 1.25);
  EXPECT_EQ(ours->data, "");
  EXPECT_EQ(ours->count, theirs.count);
  EXPECT_EQ(ours->extra, theirs.extra);

  msgpack::sbuffer bad;
  msgpack::packer<msgpack::sbuffer> pb(bad);
  pb.pack_map(2);
  pb.pack(std::string("count"));
  pb.pack(1);
  pb.pack(4);
  pb.pack(2);
  EXPECT_FALSE(decode<ping_gfdit>(std::string_view(bad.data(), bad.size())));
  auto hb = msgpack::unpack(bad.data(), bad.size());
  EXPECT_THROW(hb.get().as<ping_msgpack_c>(), msgpack::type_error);
}

TEST(codec, doubles_pack_as_msgpack_c_does_and_two_to_the_64_packs_as_a_float) {
  const double two_to_64 = 18446744073709551616.0;
  for (double d :
       {0.0, -0.0, 0.5, 3.0, -1.0, 4294967296.0, 9223372036854775808.0, 18446744073709549568.0, -9223372036854775808.0,
        -18446744073709551616.0, 1e300, -1e300, std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    SCOPED_TRACE(d);
    EXPECT_EQ(encode(ping_gfdit{1, "", d}), packed(ping_gfdit{1, "", d}));
  }
  // The library's own packer converts 2^64 to uint64_t (undefined); ours writes a float64.
  const std::string bytes = encode(ping_gfdit{1, "", two_to_64});
  const std::string tail("\xcb\x43\xf0\0\0\0\0\0\0", 9);  // float64 2^64
  ASSERT_GE(bytes.size(), tail.size());
  EXPECT_EQ(bytes.substr(bytes.size() - tail.size()), tail);
  auto back = decode<ping_gfdit>(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->extra, two_to_64);
}

TEST(catalog, renders_envelopes_as_json_and_refuses_id_clashes) {
  envelope env;
  env.type_id = type_id_of<msg::pong>;
  env.sender = "a";
  env.destination = "b";
  env.payload = encode(msg::pong{8, "zz"});
  auto j = catalog::global().render(env);
  EXPECT_EQ(j["type"], "example.pong");
  EXPECT_EQ(j["payload"]["count"], 8);
  EXPECT_EQ(j["payload"]["data"], "zz");

  catalog c;
  ASSERT_TRUE(c.add<msg::ping>());
  ASSERT_TRUE(c.add<msg::ping>());  // the same type twice is harmless
  catalog_entry clash{"not.ping", type_id_of<msg::ping>, 1, {}, {}};
  auto r = c.add_entry(clash);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().what.find("already taken by 'example.ping'"), std::string::npos);
}

}  // namespace
}  // namespace gfdit
