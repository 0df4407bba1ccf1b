// The bag file: CRC32C, a 100,000-message round trip, seeking and filtering by the index, a bag
// cut off at many offsets, repair, and hostile bytes (errors naming the offset, never a crash).
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <random>
#include <set>

#include "bag/bag_reader.hpp"
#include "bag/bag_writer.hpp"
#include "bag/crc32c.hpp"
#include "tests/bag/bag_test_support.hpp"

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

// Found by fuzz/fuzz_bag_reader (UBSan): a catalog id written as a float (-7.4e28) was cast to
// u32, undefined behaviour. Every integer of a header or index must be an integer that fits.
TEST(bag, header_and_index_integers_that_are_floats_or_out_of_range_are_refused) {
  auto encoded = [](const nlohmann::json& j) {
    const auto b = nlohmann::json::to_msgpack(j);
    return std::string(b.begin(), b.end());
  };
  const nlohmann::json row = {{"name", "x"}, {"id", 7}, {"version", 1}};
  EXPECT_TRUE(bag::decode_header(encoded({{"format", 1}, {"catalog", {row}}})));
  for (const auto& [key, bad] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"id", -7.4e28}, {"id", 1.0}, {"id", -1}, {"id", 1ull << 32}, {"version", 70000}}) {
    auto r = row;
    r[key] = bad;
    auto h = bag::decode_header(encoded({{"format", 1}, {"catalog", {r}}}));
    ASSERT_FALSE(h) << key << " = " << bad.dump();
    EXPECT_NE(h.err().what.find("bag header"), std::string::npos) << h.err().what;
  }
  EXPECT_FALSE(bag::decode_header(encoded({{"format", 1}, {"start_ns", 1e300}})));
  const nlohmann::json index = {{"chunks", {{0, 16, 1, 0, 5, 5}}},
                                {"count", 1},
                                {"first_ns", 5},
                                {"last_ns", 5},
                                {"senders", nlohmann::json::object()},
                                {"destinations", nlohmann::json::object()},
                                {"topics", nlohmann::json::object()},
                                {"types", nlohmann::json::object()}};
  EXPECT_TRUE(bag::decode_index(encoded(index)));
  auto bad = index;
  bad["chunks"][0][1] = -3.5e20;
  EXPECT_FALSE(bag::decode_index(encoded(bad)));
  bad = index;
  bad["senders"] = {{"a", {{"count", 1}, {"chunks", {1e30}}}}};
  EXPECT_FALSE(bag::decode_index(encoded(bad)));
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
  const std::vector<std::int64_t> ints{
      0, -1, -32, -33, -128, -129, -32768, -32769, -2147483648ll, -2147483649ll, INT64_MIN, 127, 128, 65536, INT64_MAX};
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
  std::vector<std::size_t> cuts{0,
                                5,
                                bag::file_prefix_bytes,
                                data_begin - 1,
                                data_begin,
                                data_begin + 1,
                                full.size() - 1,
                                full.size() - bag::trailer_bytes,
                                (*r)->data_end(),
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
    auto rep = bag::repair(cut_path, cut_path);
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
  auto rep = bag::repair(cut_path, cut_path);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->dropped_bytes, 0u);
  EXPECT_NE(rep->note.find("not closed"), std::string::npos) << rep->note;
  auto fixed = bag::reader::open(cut_path);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(bag::encode_index((*fixed)->idx()), expect);
  EXPECT_EQ(testing::read_file(cut_path), testing::read_file(path));  // bit for bit
}

TEST(bag, a_damaged_chunk_is_an_error_naming_its_offset_and_repair_keeps_every_other_chunk) {
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
  auto rep = bag::repair(path, path);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->chunks, (*r)->idx().chunks.size() - 1);
  EXPECT_EQ(rep->messages, (*r)->idx().count - third.count);
}

// A 15-chunk bag (20 messages a chunk) damaged in one place, repaired into a new file: what is
// kept, what the report names, and the input left as it was.
struct damaged_case {
  std::string path, out;
  std::vector<bag::chunk_info> chunks;
  std::string before;
  bag::repair_report rep;
};

damaged_case repair_damaged(bool closed,
                            const std::function<void(std::string&, const std::vector<bag::chunk_info>&)>& damage) {
  damaged_case c;
  c.path = testing::chunked_bag(15, 20, closed);
  auto r = bag::reader::open(c.path);
  EXPECT_TRUE(r);
  c.chunks = (*r)->idx().chunks;
  std::string bytes = testing::read_file(c.path);
  damage(bytes, c.chunks);
  testing::write_file(c.path, bytes);
  c.before = bytes;
  c.out = temp_path("repaired");
  auto rep = bag::repair(c.path, c.out);
  EXPECT_TRUE(rep) << rep.err().what;
  if (rep) c.rep = *rep;
  EXPECT_EQ(testing::read_file(c.path), c.before);
  return c;
}

// The messages of `out` are those of the 15-chunk bag without the chunks numbered in `lost`.
void expect_all_but(const std::string& out, const std::vector<bag::chunk_info>& chunks, std::set<std::size_t> lost) {
  std::vector<std::uint64_t> want;
  for (std::size_t k = 0; k < chunks.size(); ++k)
    if (!lost.count(k))
      for (std::uint64_t i = 0; i < chunks[k].count; ++i) want.push_back(chunks[k].first_index + i);
  auto r = bag::reader::open(out);
  ASSERT_TRUE(r) << r.err().what;
  EXPECT_EQ((*r)->recovery_note(), "");
  EXPECT_EQ((*r)->idx().chunks.size(), chunks.size() - lost.size());
  auto got = read_all(**r);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(testing::same_envelope(got[i], synthetic(want[i]))) << i;
  auto again = bag::reader::open(out, {.scan = true});  // the new footer is the one a scan builds
  ASSERT_TRUE(again);
  EXPECT_EQ(bag::encode_index((*again)->idx()), bag::encode_index((*r)->idx()));
  EXPECT_TRUE((*r)->verify().empty());
}

void flip(std::string& bytes, std::uint64_t at) { bytes.at(at) ^= 0x10; }

TEST(bag_repair, one_flipped_bit_in_chunk_8_of_15_loses_chunk_8_only_and_says_so) {
  for (bool closed : {true, false}) {
    auto c = repair_damaged(closed, [](std::string& b, const auto& ch) {
      flip(b, ch[7].offset + bag::chunk_head_bytes + ch[7].bytes / 2);
    });
    expect_all_but(c.out, c.chunks, {7});
    ASSERT_EQ(c.rep.skipped.size(), 1u) << closed;
    EXPECT_EQ(c.rep.skipped[0].offset, c.chunks[7].offset);
    EXPECT_EQ(c.rep.skipped[0].bytes, bag::chunk_head_bytes + c.chunks[7].bytes);
    EXPECT_EQ(c.rep.skipped[0].count, 20u);
    EXPECT_EQ(c.rep.skipped[0].what, "chunk CRC mismatch");
    EXPECT_FALSE(c.rep.skipped[0].cut_off);
    EXPECT_TRUE(c.rep.damaged());
    EXPECT_EQ(c.rep.messages, 280u);
    EXPECT_EQ(c.rep.chunks, 14u);
    EXPECT_EQ(c.rep.dropped_bytes, bag::chunk_head_bytes + c.chunks[7].bytes);
  }
}

TEST(bag_repair, a_damaged_chunk_length_is_not_trusted_to_find_the_next_chunk) {
  // Lengths pointing into the next chunk, short of it, past the file, and a magic that is gone.
  const std::vector<std::function<void(std::string&, std::uint64_t)>> damages{
      [](std::string& b, std::uint64_t at) { flip(b, at + 4); },
      [](std::string& b, std::uint64_t at) { flip(b, at + 5); },
      [](std::string& b, std::uint64_t at) { b[at + 7] = '\x7f'; },
      [](std::string& b, std::uint64_t at) { b[at + 4] = b[at + 5] = b[at + 6] = b[at + 7] = '\0'; },
      [](std::string& b, std::uint64_t at) { flip(b, at + 1); },
  };
  for (bool closed : {true, false})
    for (std::size_t k = 0; k < damages.size(); ++k) {
      auto c = repair_damaged(closed, [&](std::string& b, const auto& ch) { damages[k](b, ch[7].offset); });
      SCOPED_TRACE("damage " + std::to_string(k) + (closed ? " closed" : " no footer"));
      expect_all_but(c.out, c.chunks, {7});
      ASSERT_EQ(c.rep.skipped.size(), 1u);
      EXPECT_EQ(c.rep.skipped[0].offset, c.chunks[7].offset);
      EXPECT_EQ(c.rep.skipped[0].bytes, bag::chunk_head_bytes + c.chunks[7].bytes);
      EXPECT_FALSE(c.rep.skipped[0].cut_off);
      // The footer knows the count whatever the head says; without one, a head with a damaged
      // length says nothing.
      if (closed)
        EXPECT_EQ(c.rep.skipped[0].count, 20u);
      else
        EXPECT_FALSE(c.rep.skipped[0].count);
    }
}

TEST(bag_repair, damage_in_the_last_chunk_is_damage_not_a_cut) {
  for (bool closed : {true, false}) {
    auto c = repair_damaged(closed,
                            [](std::string& b, const auto& ch) { flip(b, ch[14].offset + bag::chunk_head_bytes + 1); });
    expect_all_but(c.out, c.chunks, {14});
    ASSERT_EQ(c.rep.skipped.size(), 1u);
    EXPECT_EQ(c.rep.skipped[0].offset, c.chunks[14].offset);
    EXPECT_EQ(c.rep.skipped[0].count, 20u);
    EXPECT_FALSE(c.rep.skipped[0].cut_off);
    EXPECT_TRUE(c.rep.damaged());
  }
}

TEST(bag_repair, adjacent_damaged_chunks_are_reported_one_by_one) {
  auto c = repair_damaged(true, [](std::string& b, const auto& ch) {
    for (std::size_t k : {4, 5, 6}) flip(b, ch[k].offset + bag::chunk_head_bytes + 2);
    flip(b, ch[10].offset + 6);  // and a length, further on
  });
  expect_all_but(c.out, c.chunks, {4, 5, 6, 10});
  ASSERT_EQ(c.rep.skipped.size(), 4u);
  const std::vector<std::size_t> lost{4, 5, 6, 10};
  for (std::size_t i = 0; i < lost.size(); ++i) {
    EXPECT_EQ(c.rep.skipped[i].offset, c.chunks[lost[i]].offset);
    EXPECT_EQ(c.rep.skipped[i].count, 20u);
  }
}

TEST(bag_repair, an_end_cut_off_mid_write_is_a_cut_not_damage) {
  const auto path = testing::chunked_bag(15, 20, false);
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  const auto last = (*r)->idx().chunks.back();
  const auto bytes = testing::read_file(path);
  testing::write_file(path, std::string_view(bytes).substr(0, last.offset + bag::chunk_head_bytes + last.bytes - 9));
  const auto out = temp_path("cut-repaired");
  auto rep = bag::repair(path, out);
  ASSERT_TRUE(rep) << rep.err().what;
  EXPECT_FALSE(rep->damaged());
  ASSERT_EQ(rep->skipped.size(), 1u);
  EXPECT_TRUE(rep->skipped[0].cut_off);
  EXPECT_EQ(rep->skipped[0].offset, last.offset);
  EXPECT_EQ(rep->skipped[0].count, 20u);
  EXPECT_EQ(rep->messages, 280u);
  EXPECT_FALSE(bag::repair(path, "").ok());  // no silent in-place default
}

TEST(bag_repair, verify_names_every_chunk_that_fails_its_checks) {
  const auto path = testing::chunked_bag(15, 20, true);
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  EXPECT_TRUE((*r)->verify().empty());
  const auto ch = (*r)->idx().chunks;
  std::string bytes = testing::read_file(path);
  flip(bytes, ch[3].offset + bag::chunk_head_bytes + 40);
  flip(bytes, ch[9].offset + 9);  // the count
  testing::write_file(path, bytes);
  auto d = bag::reader::open(path);
  ASSERT_TRUE(d);
  const auto bad = (*d)->verify();
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0].offset, ch[3].offset);
  EXPECT_EQ(bad[0].what, "chunk CRC mismatch");
  EXPECT_EQ(bad[1].offset, ch[9].offset);
  EXPECT_EQ(bad[1].count, 20u);
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
