// The bag reader on a file: open (the footer's index, then a scan, then a scan that resyncs past
// damage), every message read, verify(), every raw chunk, and repair() into a second file, which
// must then open and verify clean. Errors are values; none may crash.
//
// Most mutations break a CRC, which ends the readable part at once. When the first byte is odd
// the harness rewrites every CRC it can find (header, chunks in sequence, index) before the
// reader sees the file, so mutated records and indexes reach the decoders behind the checks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "bag/bag_reader.hpp"
#include "bag/crc32c.hpp"
#include "fuzz/fuzz_support.hpp"

namespace {

using namespace gfdit::bag;
using gfdit::crc32c;

void set_u32(std::string& s, std::size_t at, std::uint32_t v) {
  std::string le;
  put_u32(le, v);
  s.replace(at, 4, le);
}

void fix_crcs(std::string& s) {
  if (s.size() < file_prefix_bytes || s.compare(0, 8, file_magic) != 0) return;
  const std::uint64_t header_len = get_u32(s.data() + 12);
  if (file_prefix_bytes + header_len > s.size()) return;
  set_u32(s, 16, crc32c(std::string_view(s).substr(file_prefix_bytes, header_len)));
  std::uint64_t at = file_prefix_bytes + header_len;
  while (at + chunk_head_bytes <= s.size() && s.compare(at, 4, chunk_magic) == 0) {
    const std::uint64_t len = get_u32(s.data() + at + 4);
    if (at + chunk_head_bytes + len > s.size()) return;
    const std::string_view v(s);
    set_u32(s, at + 12, crc32c(v.substr(at + chunk_head_bytes, len), crc32c(v.substr(at, 12))));
    at += chunk_head_bytes + len;
  }
  if (at + 12 <= s.size() && s.compare(at, 4, index_magic) == 0) {
    const std::uint64_t len = get_u32(s.data() + at + 4);
    if (at + 12 + len <= s.size()) set_u32(s, at + 8, crc32c(std::string_view(s).substr(at + 12, len)));
  }
}

void read_all(const std::string& path, open_options o) {
  auto r = reader::open(path, o);
  if (!r) return;
  (void)(*r)->verify();
  for (std::uint32_t i = 0; i < (*r)->idx().chunks.size(); ++i) (void)(*r)->raw_chunk(i);
  for (;;) {
    auto m = (*r)->next();
    if (!m || !*m) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static gfdit::fuzz::temp_file in(".bag"), out(".repaired.bag");
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) fix_crcs(bytes);
  const auto& path = in.write(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  read_all(path, {});
  read_all(path, {.scan = true});
  read_all(path, {.scan = true, .resync = true});
  if (auto rep = repair(path, out.path())) {
    // A repaired bag holds only chunks that passed their checks: it opens by its footer and
    // verifies clean.
    auto r = reader::open(out.path());
    if (!r || !(*r)->recovery_note().empty() || !(*r)->verify().empty()) __builtin_trap();
  }
  return 0;
}
