// The bag tools through their entry point: info, echo (text and JSON, filters, --from), filter,
// repair, and timeline (Chrome trace and SVG from serving task messages).
#include <gtest/gtest.h>

#include <filesystem>

#include "bag/bag_reader.hpp"
#include "bag/bag_writer.hpp"
#include "launch/cli/bag_main.hpp"
#include "messages/serving.hpp"
#include "tests/bag/bag_test_support.hpp"

namespace gfdit {
namespace {

using testing::lines;
using testing::run_tool;
using testing::synthetic;

std::string small_bag(std::uint64_t n = 60) {
  const auto path = testing::temp_path("tools");
  auto w = bag::writer::create(path, bag::header::current("graph: demo\n"), {.chunk_bytes = 512});
  EXPECT_TRUE(w);
  for (std::uint64_t i = 0; i < n; ++i) EXPECT_TRUE((*w)->write(synthetic(i)));
  EXPECT_TRUE((*w)->close());
  return path;
}

TEST(bag_tools, echo_prints_one_line_per_message_with_the_payload_rendered) {
  const auto path = small_bag();
  auto r = run_tool(bag_main, {"bag", "echo", path, "--limit", "2"});
  ASSERT_EQ(r.rc, 0);
  const auto l = lines(r.out);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0], "[0] +0.000000s alpha -> beta (direct) example.ping {\"count\":0,\"data\":\"\"}");
  EXPECT_EQ(l[1], "[1] +0.000001s beta -> news (topic) example.pong {\"count\":1,\"data\":\"bbb\"}");
}

TEST(bag_tools, echo_json_filters_by_type_and_actor_from_an_index) {
  const auto path = small_bag();
  auto r =
      run_tool(bag_main, {"bag", "echo", path, "--json", "--type", "example.ping", "--actor", "gamma", "--from", "20"});
  ASSERT_EQ(r.rc, 0);
  std::vector<std::uint64_t> expect;
  for (std::uint64_t i = 20; i < 60; ++i) {
    const auto e = synthetic(i);
    if (e.is<msg::ping>() && (e.sender == "gamma" || e.destination == "gamma")) expect.push_back(i);
  }
  const auto l = lines(r.out);
  ASSERT_EQ(l.size(), expect.size());
  for (std::size_t k = 0; k < l.size(); ++k) {
    auto j = nlohmann::json::parse(l[k]);
    EXPECT_EQ(j["index"], expect[k]);
    EXPECT_EQ(j["type"], "example.ping");
    EXPECT_EQ(j["payload"]["count"], expect[k]);
    EXPECT_EQ(j["route"], "direct");
  }
}

TEST(bag_tools, a_type_the_bag_does_not_know_is_pointed_out_not_just_matched_by_nothing) {
  const auto path = small_bag();
  auto r = run_tool(bag_main, {"bag", "echo", path, "--json", "--type", "example.pnig,example.ping"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.err.find("note: no type 'example.pnig' in this bag's catalog"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("'example.ping'"), std::string::npos) << r.err;  // a known one is not named
  EXPECT_FALSE(r.out.empty());                                          // and its messages print
  const std::string out = testing::temp_path("typo.bag");
  auto f = run_tool(bag_main, {"bag", "filter", path, out, "--type", "example.pnig"});
  EXPECT_EQ(f.rc, 0);
  EXPECT_NE(f.err.find("no type 'example.pnig'"), std::string::npos) << f.err;
  EXPECT_NE(f.out.find("0 of "), std::string::npos) << f.out;
  // An id is taken as it is.
  EXPECT_TRUE(run_tool(bag_main, {"bag", "echo", path, "--type", "12345"}).err.empty());
}

TEST(bag_tools, filter_writes_a_bag_of_exactly_the_matches_and_info_counts_them) {
  const auto path = small_bag();
  const auto out = testing::temp_path("filtered");
  auto r = run_tool(bag_main, {"bag", "filter", path, out, "--topic", "news"});
  ASSERT_EQ(r.rc, 0) << r.out;
  std::uint64_t expect = 0;
  for (std::uint64_t i = 0; i < 60; ++i) {
    const auto e = synthetic(i);
    expect += e.kind == route::topic && e.destination == "news";
  }
  EXPECT_EQ(r.out, std::to_string(expect) + " of 60 messages written to " + out + "\n");
  auto info = run_tool(bag_main, {"bag", "info", out, "--json"});
  ASSERT_EQ(info.rc, 0);
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["messages"], expect);
  EXPECT_EQ(j["topics"]["news"], expect);
  EXPECT_EQ(j["topics"].size(), 1u);
  EXPECT_EQ(j["index"], "footer");
  EXPECT_EQ(j["launch_bytes"], 12);
  // The filtered bag's messages are the originals, bit for bit.
  auto e = run_tool(bag_main, {"bag", "echo", out, "--json"});
  for (const auto& line : lines(e.out)) {
    auto m = nlohmann::json::parse(line);
    EXPECT_EQ(m["destination"], "news");
  }
}

TEST(bag_tools, filter_onto_its_own_input_filters_it_in_place) {
  const auto path = small_bag();
  auto whole = nlohmann::json::parse(run_tool(bag_main, {"bag", "info", path, "--json"}).out);
  auto r = run_tool(bag_main, {"bag", "filter", path, path, "--topic", "news"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto info = nlohmann::json::parse(run_tool(bag_main, {"bag", "info", path, "--json"}).out);
  EXPECT_GT(info["messages"].get<std::uint64_t>(), 0u);
  EXPECT_LT(info["messages"].get<std::uint64_t>(), whole["messages"].get<std::uint64_t>());
  EXPECT_EQ(info["topics"].size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(path + ".filter-tmp"));
  // An output it cannot write is an error, and the input stays as it was.
  const auto before = testing::read_file(path);
  auto bad = run_tool(bag_main, {"bag", "filter", path, "/nonexistent/dir/out.bag"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("error:"), std::string::npos) << bad.err;
  EXPECT_EQ(testing::read_file(path), before);
}

TEST(bag_tools, info_reports_a_cut_bag_and_repair_fixes_it) {
  const auto path = small_bag(400);
  auto r = bag::reader::open(path);
  ASSERT_TRUE(r);
  const auto cut = (*r)->idx().chunks[3].offset + 7;
  const auto bytes = testing::read_file(path);
  testing::write_file(path, std::string_view(bytes).substr(0, cut));
  auto info = run_tool(bag_main, {"bag", "info", path, "--json"});
  ASSERT_EQ(info.rc, 0);
  auto j = nlohmann::json::parse(info.out);
  EXPECT_NE(j["index"].get<std::string>().find("rebuilt: no index footer"), std::string::npos) << j["index"];
  const std::uint64_t kept = (*r)->idx().chunks[3].first_index;
  EXPECT_EQ(j["messages"], kept);
  EXPECT_EQ(j["status"], "recovered");  // a cut, not damage
  auto rep = run_tool(bag_main, {"bag", "repair", path, "--in-place"});
  ASSERT_EQ(rep.rc, 0);
  EXPECT_NE(rep.out.find("repaired " + path + " in place: " + std::to_string(kept) +
                         " messages in 3 chunks; 7 bytes dropped"),
            std::string::npos)
      << rep.out;
  EXPECT_NE(rep.out.find("cut off (an incomplete last chunk) at offset " +
                         std::to_string((*r)->idx().chunks[3].offset) + " (7 bytes"),
            std::string::npos)
      << rep.out;
  auto after = nlohmann::json::parse(run_tool(bag_main, {"bag", "info", path, "--json"}).out);
  EXPECT_EQ(after["index"], "footer");
  EXPECT_EQ(after["messages"], kept);
}

std::string fifteen_chunk_bag(bool close = true) { return testing::chunked_bag(15, 20, close); }

std::vector<bag::chunk_info> chunks_of(const std::string& path) {
  auto r = bag::reader::open(path);
  EXPECT_TRUE(r);
  return r ? (*r)->idx().chunks : std::vector<bag::chunk_info>{};
}

void flip_bit(const std::string& path, std::uint64_t at) {
  auto bytes = testing::read_file(path);
  bytes.at(at) ^= 0x10;
  testing::write_file(path, bytes);
}

TEST(bag_tools, repair_keeps_every_intact_chunk_after_a_damaged_one_and_leaves_the_input_alone) {
  const auto path = fifteen_chunk_bag();
  const auto chunks = chunks_of(path);
  ASSERT_EQ(chunks.size(), 15u);
  const auto& eighth = chunks[7];
  flip_bit(path, eighth.offset + bag::chunk_head_bytes + eighth.bytes / 2);
  const auto before = testing::read_file(path);
  const auto out = testing::temp_path("repaired");
  auto rep = run_tool(bag_main, {"bag", "repair", path, out});
  EXPECT_EQ(rep.rc, 1) << rep.out << rep.err;  // something was dropped
  EXPECT_NE(rep.out.find("offset " + std::to_string(eighth.offset)), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("20 messages"), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("280 messages in 14 chunks"), std::string::npos) << rep.out;
  EXPECT_EQ(testing::read_file(path), before);  // the input is untouched
  auto r = bag::reader::open(out);
  ASSERT_TRUE(r) << r.err().what;
  EXPECT_EQ((*r)->recovery_note(), "");
  EXPECT_EQ((*r)->idx().chunks.size(), 14u);
  EXPECT_EQ((*r)->idx().count, 280u);
  std::uint64_t i = 0;
  while (true) {
    auto n = (*r)->next();
    ASSERT_TRUE(n) << n.err().what;
    if (!*n) break;
    if (i == eighth.first_index) i += eighth.count;  // chunk 8's messages are the ones missing
    ASSERT_TRUE(testing::same_envelope((*n)->env, synthetic(i))) << "message " << i;
    ++i;
  }
  EXPECT_EQ(i, 300u);
  auto info = nlohmann::json::parse(run_tool(bag_main, {"bag", "info", out, "--json"}).out);
  EXPECT_EQ(info["status"], "healthy");
}

TEST(bag_tools, repair_writes_beside_its_input_unless_told_to_replace_it) {
  const auto path = fifteen_chunk_bag(false);
  const auto before = testing::read_file(path);
  auto rep = run_tool(bag_main, {"bag", "repair", path});
  ASSERT_EQ(rep.rc, 0) << rep.out << rep.err;
  EXPECT_EQ(testing::read_file(path), before);
  auto fixed = bag::reader::open(path + ".repaired");
  ASSERT_TRUE(fixed);
  EXPECT_EQ((*fixed)->recovery_note(), "");
  EXPECT_EQ((*fixed)->idx().count, 300u);
  // OUT naming IN is refused without --in-place, and IN stays as it was.
  auto same = run_tool(bag_main, {"bag", "repair", path, path});
  EXPECT_EQ(same.rc, 2);
  EXPECT_NE(same.err.find("--in-place"), std::string::npos) << same.err;
  EXPECT_EQ(testing::read_file(path), before);
  auto in_place = run_tool(bag_main, {"bag", "repair", path, "--in-place"});
  ASSERT_EQ(in_place.rc, 0) << in_place.out << in_place.err;
  EXPECT_EQ(testing::read_file(path), testing::read_file(path + ".repaired"));
  EXPECT_FALSE(std::filesystem::exists(path + ".repair-tmp"));
  // The old spelling still works.
  const auto out = testing::temp_path("out-option");
  EXPECT_EQ(run_tool(bag_main, {"bag", "repair", path, "--out", out}).rc, 0);
  EXPECT_EQ(testing::read_file(out), testing::read_file(path));
}

TEST(bag_tools, info_verifies_every_chunk_and_reports_damage) {
  const auto path = fifteen_chunk_bag();
  auto good = run_tool(bag_main, {"bag", "info", path, "--json"});
  ASSERT_EQ(good.rc, 0);
  EXPECT_EQ(nlohmann::json::parse(good.out)["status"], "healthy");
  const auto chunks = chunks_of(path);
  flip_bit(path, chunks[7].offset + bag::chunk_head_bytes + 3);
  auto bad = run_tool(bag_main, {"bag", "info", path, "--json"});
  EXPECT_EQ(bad.rc, 1);
  auto j = nlohmann::json::parse(bad.out);
  EXPECT_EQ(j["status"], "damaged");
  ASSERT_EQ(j["damaged"].size(), 1u);
  EXPECT_EQ(j["damaged"][0]["offset"], chunks[7].offset);
  EXPECT_EQ(j["damaged"][0]["messages"], 20);
  EXPECT_EQ(j["damaged"][0]["check"], "chunk CRC mismatch");
  auto text = run_tool(bag_main, {"bag", "info", path});
  EXPECT_EQ(text.rc, 1);
  EXPECT_NE(text.out.find("status:     damaged"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("offset " + std::to_string(chunks[7].offset)), std::string::npos) << text.out;
  auto quick = run_tool(bag_main, {"bag", "info", path, "--json", "--no-verify"});
  EXPECT_EQ(quick.rc, 0);
  EXPECT_EQ(nlohmann::json::parse(quick.out)["status"], "unverified");
}

TEST(bag_tools, bad_input_is_an_error_status_not_a_crash) {
  EXPECT_EQ(run_tool(bag_main, {"bag", "info", "/nonexistent.bag"}).rc, 2);
  EXPECT_EQ(run_tool(bag_main, {"bag", "frobnicate"}).rc, 2);
  const auto junk = testing::temp_path("junk");
  testing::write_file(junk, "this is not a bag at all, but long enough");
  EXPECT_EQ(run_tool(bag_main, {"bag", "echo", junk}).rc, 2);
}

envelope serving(std::int64_t wall_us, const std::string& sender, const std::string& dest, const auto& m) {
  static std::uint64_t seq = 0;
  envelope e;
  e.kind = route::direct;
  e.sender = sender;
  e.destination = dest;
  e.seq = ++seq;
  e.time = {seq, wall_us * 1000};
  e.type_id = type_id_of<std::decay_t<decltype(m)>>;
  e.payload = encode(m);
  return e;
}

TEST(bag_tools, timeline_draws_serving_tasks_per_worker) {
  const auto path = testing::temp_path("timeline");
  {
    auto w = bag::writer::create(path, bag::header::current());
    ASSERT_TRUE(w);
    msg::task_assign a1{
        .task_id = 1, .request_id = 7, .stage = "denoise", .step_begin = 0, .step_end = 4, .members = {0, 1}};
    msg::task_assign a2{.task_id = 2, .request_id = 8, .stage = "prepare", .members = {2}};
    for (auto m : a1.members) ASSERT_TRUE((*w)->write(serving(100, "scheduler", "worker-" + std::to_string(m), a1)));
    ASSERT_TRUE((*w)->write(serving(110, "scheduler", "worker-2", a2)));
    msg::task_done d1{.task_id = 1, .request_id = 7, .stage = "denoise", .worker = 0, .start_us = 1000, .end_us = 5000};
    ASSERT_TRUE((*w)->write(serving(5100, "worker-0", "scheduler", d1)));
    ASSERT_TRUE((*w)->close());
  }
  const auto trace = testing::temp_path("trace") + ".json";
  const auto svg = testing::temp_path("gantt") + ".svg";
  auto r = run_tool(bag_main, {"bag", "timeline", path, "--out", trace, "--out", svg});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "3 spans on 3 lanes (serving_tasks) -> 2 file(s)\n");
  auto j = nlohmann::json::parse(testing::read_file(trace));
  std::map<int, std::string> lanes;
  std::vector<nlohmann::json> spans;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") lanes[e["tid"]] = e["args"]["name"];
    if (e["ph"] == "X") spans.push_back(e);
  }
  EXPECT_EQ(lanes, (std::map<int, std::string>{{1, "worker 0"}, {2, "worker 1"}, {3, "worker 2"}}));
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0]["name"], "req 7 denoise [0,4)");
  EXPECT_EQ(spans[0]["ts"], 1000);
  EXPECT_EQ(spans[0]["dur"], 4000);
  EXPECT_EQ(spans[1]["tid"], 2);
  EXPECT_EQ(spans[2]["args"]["incomplete"], true);  // task 2 never reported
  const auto s = testing::read_file(svg);
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_NE(s.find("worker 2"), std::string::npos);
  EXPECT_NE(s.find("req 7 denoise [0,4)"), std::string::npos);
}

}  // namespace
}  // namespace gfdit
