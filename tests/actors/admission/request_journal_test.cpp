// The journal of admitted requests (actors/admission/request_journal.hpp) on real files: what was
// admitted and not finished comes back after a "crash" (the object dropped without a word), ids
// go on above everything seen, a torn or damaged tail is ignored, and the file stays small.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "actors/admission/admission_core.hpp"
#include "actors/admission/request_journal.hpp"
#include "messages/codec.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;

struct journal_file {
  fs::path dir = fs::temp_directory_path() / ("gfdit-journal-" + std::to_string(::getpid()) + "-" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::string path = (dir / "admitted.journal").string();
  journal_file() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~journal_file() { fs::remove_all(dir); }
};

msg::admitted admitted(admission_core& a, const std::string& tag) {
  msg::generate_request r;
  r.model = "image-dit-20b-standin";
  r.width = r.height = 512;
  r.steps = 8;
  r.client_tag = tag;
  r.reply_to = "gateway";
  return std::get<msg::admitted>(a.on_request(r, 1'000));
}

TEST(request_journal, open_requests_survive_a_crash_and_ids_go_on_above_all_seen) {
  journal_file f;
  admission_core a(cost_model::stock());
  {
    request_journal::contents was;
    auto j = request_journal::open(f.path, was);
    ASSERT_TRUE(j) << j.err().what;
    EXPECT_TRUE(was.open.empty());
    EXPECT_EQ(was.next_id, 1u);
    for (const char* tag : {"a", "b", "c", "d"}) {
      const auto m = admitted(a, tag);
      ASSERT_TRUE((*j)->admitted(m.request_id, encode(m)));
    }
    ASSERT_TRUE((*j)->finished(2));
    ASSERT_TRUE((*j)->finished(4));   // the newest finished: its id must still not come again
    ASSERT_TRUE((*j)->finished(99));  // not ours: nothing written
  }                                   // no close, no flush beyond write(): as a SIGKILL leaves it
  auto was = request_journal::read(f.path);
  ASSERT_TRUE(was);
  ASSERT_EQ(was->open.size(), 2u);
  EXPECT_EQ(was->open[0].request_id, 1u);
  EXPECT_EQ(was->open[0].request.client_tag, "a");
  EXPECT_EQ(was->open[0].request.reply_to, "gateway");
  EXPECT_EQ(was->open[1].request.client_tag, "c");
  EXPECT_EQ(was->next_id, 5u);

  // A restarted admission resumes from it: ids go on, the open ones hold their places.
  admission_core b(cost_model::stock());
  b.resume(was->open, was->next_id);
  EXPECT_EQ(b.outstanding(), 2u);
  EXPECT_EQ(admitted(b, "e").request_id, 5u);

  // Opening compacts: the same contents, and after it the next id survives with no record left.
  request_journal::contents again;
  auto j = request_journal::open(f.path, again);
  ASSERT_TRUE(j);
  EXPECT_EQ(again.open.size(), 2u);
  ASSERT_TRUE((*j)->finished(1));
  ASSERT_TRUE((*j)->finished(3));
  j->reset();
  request_journal::contents empty;
  ASSERT_TRUE(request_journal::open(f.path, empty));
  EXPECT_TRUE(empty.open.empty());
  EXPECT_EQ(empty.next_id, 5u);
}

TEST(request_journal, a_torn_or_damaged_last_record_is_ignored) {
  journal_file f;
  admission_core a(cost_model::stock());
  std::uint64_t whole = 0;
  {
    request_journal::contents was;
    auto j = request_journal::open(f.path, was);
    ASSERT_TRUE(j);
    const auto m1 = admitted(a, "kept");
    ASSERT_TRUE((*j)->admitted(m1.request_id, encode(m1)));
    whole = fs::file_size(f.path);
    const auto m2 = admitted(a, "torn");
    ASSERT_TRUE((*j)->admitted(m2.request_id, encode(m2)));
  }
  std::string data;
  {
    std::ifstream in(f.path, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Cut anywhere inside the second record: the first alone comes back.
  for (std::uint64_t cut : {whole + 1, whole + 7, whole + 8, data.size() - 1}) {
    std::ofstream(f.path, std::ios::binary | std::ios::trunc).write(data.data(), static_cast<std::streamsize>(cut));
    auto was = request_journal::read(f.path);
    ASSERT_TRUE(was);
    ASSERT_EQ(was->open.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(was->open[0].request.client_tag, "kept");
    EXPECT_EQ(was->ignored_bytes, cut - whole);
  }
  // A flipped byte in the last record's body fails its checksum: ignored the same way.
  {
    request_journal::contents was;
    auto j = request_journal::open(f.path, was);  // (compacts the cut file down to "kept")
    ASSERT_TRUE(j);
    const auto m2 = admitted(a, "flipped");
    ASSERT_TRUE((*j)->admitted(m2.request_id, encode(m2)));
  }
  {
    std::fstream io(f.path, std::ios::binary | std::ios::in | std::ios::out);
    io.seekg(-3, std::ios::end);
    const char c = static_cast<char>(io.get());
    io.seekp(-3, std::ios::end);
    io.put(static_cast<char>(c ^ 0x5a));
  }
  auto was = request_journal::read(f.path);
  ASSERT_TRUE(was);
  ASSERT_EQ(was->open.size(), 1u);
  EXPECT_EQ(was->open[0].request.client_tag, "kept");
  EXPECT_GT(was->ignored_bytes, 0u);
}

TEST(request_journal, stays_small_when_requests_finish) {
  journal_file f;
  admission_core a(cost_model::stock());
  request_journal::contents was;
  auto j = request_journal::open(f.path, was, /*compact_bytes=*/4096);
  ASSERT_TRUE(j);
  for (int i = 0; i < 500; ++i) {
    const auto m = admitted(a, "r" + std::to_string(i));
    ASSERT_TRUE((*j)->admitted(m.request_id, encode(m)));
    ASSERT_TRUE((*j)->finished(m.request_id));
  }
  EXPECT_LE((*j)->bytes(), 4096u + 1024u);
  EXPECT_EQ(fs::file_size(f.path), (*j)->bytes());
  auto now = request_journal::read(f.path);
  ASSERT_TRUE(now);
  EXPECT_TRUE(now->open.empty());
  EXPECT_EQ(now->next_id, 501u);
}

TEST(request_journal, a_relative_name_lives_in_the_launchers_run_folder) {
  ::setenv("GFDIT_RUN_DIR", "/tmp/gfdit-run-x", 1);
  EXPECT_EQ(journal_path("admitted.journal"), "/tmp/gfdit-run-x/admitted.journal");
  EXPECT_EQ(journal_path("/var/j"), "/var/j");
  EXPECT_EQ(journal_path(""), "");
  ::unsetenv("GFDIT_RUN_DIR");
  EXPECT_EQ(journal_path("admitted.journal"), "admitted.journal");
}

}  // namespace
}  // namespace gfdit
