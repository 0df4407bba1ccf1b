// The bag file: CRC32C, a 100,000-message round trip, seeking and filtering by the index, a bag
// cut off at many offsets, repair, and hostile bytes (errors naming the offset, never a crash).
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <random>

#include "actors/recorder/bag_reader.hpp"
#include "actors/recorder/bag_writer.hpp"
#include "actors/recorder/crc32c.hpp"
#include "tests/actors/recorder/bag_test_support.hpp"

namespace gfdit {
namespace {

using testing::synthetic;
using testing::temp_path;

std::vector<envelope> read_all(bag::reader& r) {
  std::vector<envelope> out;
  while (true) {
    auto n = r.next();
    EXPECT_TRUE(n) << (n ? "" : n.err().what);
    if (!n || !*n) break;
    out.push_back((*n)->env);
  }
  return out;
}

std::string write_bag(std::uint64_t count, std::size_t chunk_bytes, const std::string& tag = "bag") {
  const auto path = temp_path(tag);
  auto w = bag::writer::create(path, bag::header::current("nodes: []\n"), {.chunk_bytes = chunk_bytes});
  EXPECT_TRUE(w);
  for (std::uint64_t i = 0; i < count; ++i) EXPECT_TRUE((*w)->write(synthetic(i)));
  EXPECT_TRUE((*w)->close());
  return path;
}

TEST(crc32c, matches_the_standard_check_value_on_both_paths) {
  EXPECT_EQ(crc32c(std::string_view("123456789")), 0xE3069283u);
  EXPECT_EQ(crc32c_portable("123456789", 9), 0xE3069283u);
  std::mt19937_64 rng(1);
  std::string data(4099, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (std::size_t off : {0, 1, 3, 7})
    for (std::size_t n : {0, 1, 7, 8, 9, 63, 1000, 4090}) {
      EXPECT_EQ(crc32c(data.data() + off, n), crc32c_portable(data.data() + off, n)) << off << " " << n;
      // Continuing a CRC equals one pass.
      EXPECT_EQ(crc32c(data.data() + off + n / 2, n - n / 2, crc32c(data.data() + off, n / 2)),
                crc32c_portable(data.data() + off, n));
    }
}

TEST(bag, a_record_is_the_length_prefixed_encode_envelope_bytes) {
  const auto path = write_bag(3, 1 << 20);
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  auto raw = (*r)->raw_chunk(0);
  ASSERT_TRUE(raw);
  std::string expect;
  for (std::uint64_t i = 0; i < 3; ++i) {
    const auto bytes = encode_envelope(synthetic(i));
    bag::put_u32(expect, static_cast<std::uint32_t>(bytes.size()));
    expect += bytes;
  }
  EXPECT_EQ(raw->substr(bag::chunk_head_bytes), expect);
}

TEST(bag, the_chunk_encoder_writes_encode_envelope_bytes_at_every_msgpack_size_boundary) {
  const std::vector<std::uint64_t> uints{0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295ull, 4294967296ull, ~0ull};
  const std::vector<std::int64_t> ints{0, -1, -32, -33, -128, -129, -32768, -32769, -2147483648ll, -2147483649ll,
                                       INT64_MIN, 127, 128, 65536, INT64_MAX};
  const std::vector<std::size_t> lens{0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
  std::vector<envelope> cases;
  for (std::size_t k = 0; k < std::max({uints.size(), ints.size(), lens.size()}); ++k) {
    envelope e;
    const auto u = uints[k % uints.size()];
    e.type_id = static_cast<std::uint32_t>(u);
    e.version = static_cast<std::uint16_t>(u);
    e.seq = u;
    e.time = {uints[(k + 3) % uints.size()], ints[k % ints.size()]};
    e.trace_id = uints[(k + 5) % uints.size()];
    e.correlation = uints[(k + 7) % uints.size()];
    e.kind = static_cast<route>(k % 4);
    e.sender.assign(lens[k % lens.size()], 's');
    e.destination.assign(lens[(k + 1) % lens.size()], 'd');
    e.payload.assign(lens[(k + 2) % lens.size()], 'p');
    cases.push_back(e);
  }
  bag::chunk_builder c;
  std::string expect;
  for (const auto& e : cases) {
    c.append(e);
    const auto bytes = encode_envelope(e);
    bag::put_u32(expect, static_cast<std::uint32_t>(bytes.size()));
    expect += bytes;
  }
  ASSERT_EQ(c.payload().size(), expect.size());
  EXPECT_TRUE(c.payload() == expect);
}

TEST(bag, round_trip_of_100000_messages_keeps_every_field_and_the_index_counts) {
  constexpr std::uint64_t n = 100000;
  const auto path = write_bag(n, 64 << 10, "big");
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r) << r.err().what;
  EXPECT_EQ((*r)->recovery_note(), "");
  const auto& ix = (*r)->idx();
  EXPECT_EQ(ix.count, n);
  EXPECT_GT(ix.chunks.size(), 10u);
  EXPECT_EQ(ix.first_ns, synthetic(0).time.wall_ns);
  EXPECT_EQ(ix.last_ns, synthetic(n - 1).time.wall_ns);
  EXPECT_EQ(ix.senders.at("alpha").count, n / 4);
  EXPECT_EQ(ix.types.at(type_id_of<msg::ping>), (n + 2) / 3);
  EXPECT_EQ((*r)->head().launch, "nodes: []\n");
  EXPECT_FALSE((*r)->head().catalog.empty());
  std::uint64_t i = 0;
  while (true) {
    auto rec = (*r)->next();
    ASSERT_TRUE(rec) << rec.err().what;
    if (!*rec) break;
    ASSERT_EQ((*rec)->index, i);
    ASSERT_TRUE(testing::same_envelope((*rec)->env, synthetic(i))) << "message " << i;
    ++i;
  }
  EXPECT_EQ(i, n);
}

TEST(bag, seek_and_filters_use_the_index_and_return_exactly_the_matches) {
  constexpr std::uint64_t n = 20000;
  const auto path = write_bag(n, 8 << 10, "seek");
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  for (std::uint64_t at : std::vector<std::uint64_t>{0, 1, 777, 12345, n - 1}) {
    ASSERT_TRUE((*r)->seek(at));
    auto rec = (*r)->next();
    ASSERT_TRUE(rec && *rec);
    EXPECT_EQ((*rec)->index, at);
    EXPECT_TRUE(testing::same_envelope((*rec)->env, synthetic(at)));
  }
  ASSERT_TRUE((*r)->seek(n));
  auto end = (*r)->next();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);

  bag::filter f;
  f.topics = {"news"};
  (*r)->set_filter(f);
  ASSERT_TRUE((*r)->seek(0));
  auto news = read_all(**r);
  std::uint64_t expect = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto e = synthetic(i);
    expect += e.kind == route::topic && e.destination == "news";
  }
  EXPECT_EQ(news.size(), expect);
  for (const auto& e : news) EXPECT_EQ(e.destination, "news");

  bag::filter g;
  g.actors = {"beta"};
  g.types = {"example.ping"};
  (*r)->set_filter(g);
  ASSERT_TRUE((*r)->seek(0));
  expect = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto e = synthetic(i);
    expect += e.type_id == type_id_of<msg::ping> && (e.sender == "beta" || e.destination == "beta");
  }
  EXPECT_EQ(read_all(**r).size(), expect);
}

TEST(bag, a_bag_cut_off_anywhere_reads_up_to_its_last_complete_chunk_and_repairs) {
  constexpr std::uint64_t n = 3000;
  const auto path = write_bag(n, 4 << 10, "cut");
  const auto full = testing::read_file(path);
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  const auto chunks = (*r)->idx().chunks;
  const auto data_begin = (*r)->data_begin();
  std::mt19937_64 rng(7);
  std::vector<std::size_t> cuts{0, 5, bag::file_prefix_bytes, data_begin - 1, data_begin, data_begin + 1,
                                full.size() - 1, full.size() - bag::trailer_bytes, (*r)->data_end(),
                                (*r)->data_end() + 3};
  for (std::size_t i = 0; i < chunks.size(); i += 17) {
    const auto& c = chunks[i];
    cuts.insert(cuts.end(), {c.offset, c.offset + 5, c.offset + bag::chunk_head_bytes + c.bytes - 1});
  }
  for (int k = 0; k < 30; ++k) cuts.push_back(static_cast<std::size_t>(rng() % full.size()));
  for (const auto cut : cuts) {
    const auto cut_path = temp_path("cut-at");
    testing::write_file(cut_path, std::string_view(full).substr(0, cut));
    auto c = bag::reader::open(cut_path);
    if (cut < data_begin) {
      ASSERT_FALSE(c) << "cut at " << cut;
      continue;
    }
    ASSERT_TRUE(c) << "cut at " << cut << ": " << c.err().what;
    // Every chunk that ends before the cut is there, in order, bit for bit.
    std::uint64_t expect = 0;
    for (const auto& ch : chunks)
      if (ch.offset + bag::chunk_head_bytes + ch.bytes <= cut) expect += ch.count;
    auto got = read_all(**c);
    ASSERT_EQ(got.size(), expect) << "cut at " << cut;
    for (std::uint64_t i = 0; i < got.size(); ++i) ASSERT_TRUE(testing::same_envelope(got[i], synthetic(i)));
    if (cut < full.size()) {
      EXPECT_TRUE((*c)->idx().recovered) << cut;
    }
    // repair gives a closed bag with a footer that describes the same messages.
    auto rep = bag::repair(cut_path);
    ASSERT_TRUE(rep) << rep.err().what;
    EXPECT_EQ(rep->messages, expect);
    auto fixed = bag::reader::open(cut_path);
    ASSERT_TRUE(fixed);
    EXPECT_EQ((*fixed)->recovery_note(), "") << cut;
    EXPECT_EQ((*fixed)->idx().count, expect);
    EXPECT_EQ(read_all(**fixed).size(), expect);
  }
}

TEST(bag, repair_rebuilds_the_same_index_the_writer_wrote) {
  const auto path = write_bag(5000, 16 << 10, "rebuild");
  auto orig = bag::reader::open(path);
  ASSERT_TRUE(orig);
  const auto expect = bag::encode_index((*orig)->idx());
  const auto cut_path = temp_path("nofooter");
  testing::write_file(cut_path, testing::read_file(path).substr(0, (*orig)->data_end()));
  auto rep = bag::repair(cut_path);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->dropped_bytes, 0u);
  EXPECT_NE(rep->note.find("not closed"), std::string::npos) << rep->note;
  auto fixed = bag::reader::open(cut_path);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(bag::encode_index((*fixed)->idx()), expect);
  EXPECT_EQ(testing::read_file(cut_path), testing::read_file(path));  // bit for bit
}

TEST(bag, a_damaged_chunk_is_an_error_naming_its_offset_and_repair_keeps_what_precedes_it) {
  const auto path = write_bag(2000, 4 << 10, "damaged");
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  const auto third = (*r)->idx().chunks.at(2);
  std::string bytes = testing::read_file(path);
  bytes[third.offset + bag::chunk_head_bytes + 10] ^= 0x40;
  testing::write_file(path, bytes);
  auto d = bag::reader::open(path);
  ASSERT_TRUE(d);
  std::string err;
  std::uint64_t read = 0;
  while (true) {
    auto n = (*d)->next();
    if (!n) {
      err = n.err().what;
      break;
    }
    if (!*n) break;
    ++read;
  }
  EXPECT_NE(err.find("offset " + std::to_string(third.offset) + ": chunk CRC mismatch"), std::string::npos) << err;
  EXPECT_EQ(read, (*r)->idx().chunks[0].count + (*r)->idx().chunks[1].count);
  auto rep = bag::repair(path);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->chunks, 2u);
}

TEST(bag, hostile_lengths_are_errors_not_allocations) {
  const auto path = write_bag(100, 1 << 20, "hostile");
  const std::string good = testing::read_file(path);
  auto patch = [&](std::size_t at, std::uint32_t v) {
    std::string b = good;
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    const auto p = temp_path("patched");
    testing::write_file(p, b);
    return p;
  };
  auto h = bag::reader::open(patch(12, 0xFFFFFFF0u));  // header length
  ASSERT_FALSE(h);
  EXPECT_NE(h.err().what.find("offset 12"), std::string::npos) << h.err().what;
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  const auto c0 = (*r)->idx().chunks[0].offset;
  // A chunk claiming 4 GiB: the footer no longer matches, the scan stops there with a note.
  auto c = bag::reader::open(patch(c0 + 4, 0xFFFFFFFFu));
  ASSERT_TRUE(c);
  auto n = (*c)->next();
  ASSERT_FALSE(n);
  EXPECT_NE(n.err().what.find("offset " + std::to_string(c0)), std::string::npos) << n.err().what;
  auto s = bag::reader::open(patch(c0 + 4, 0xFFFFFFFFu), {.scan = true});
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)->idx().count, 0u);
  EXPECT_NE((*s)->recovery_note().find("offset " + std::to_string(c0)), std::string::npos) << (*s)->recovery_note();
  auto not_bag = bag::reader::open(patch(0, 0x12345678u));
  ASSERT_FALSE(not_bag);
  EXPECT_NE(not_bag.err().what.find("not a gfdit bag"), std::string::npos);
}

}  // namespace
}  // namespace gfdit
