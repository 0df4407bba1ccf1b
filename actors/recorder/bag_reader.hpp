#pragma once
// Reads a bag: header, index (the footer's, or rebuilt by scanning when the bag was cut off),
// and its envelopes in order, optionally filtered or from a message index on. Every length in
// the file is checked against the file before use; bad input is an error naming the offset.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/recorder/bag_format.hpp"

namespace gfdit::bag {

struct record {
  std::uint64_t index = 0;  // position in the bag, from 0
  envelope env;
};

struct repair_report;

struct open_options {
  bool scan = false;  // ignore the footer and rebuild the index from the chunks
};

class reader {
 public:
  static result<std::unique_ptr<reader>> open(const std::string& path, open_options o = {});
  ~reader();
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  const bag::header& head() const { return header_; }
  const bag::index& idx() const { return index_; }
  // Why the index was rebuilt (no footer, bad footer, ...); empty when the footer was used.
  const std::string& recovery_note() const { return note_; }
  // End of the last complete chunk (where repair cuts).
  std::uint64_t data_end() const { return data_end_; }
  std::uint64_t file_size() const { return size_; }
  std::uint64_t data_begin() const { return data_begin_; }

  // Only matching messages from now on; chunks the index shows cannot match are skipped.
  void set_filter(filter f);
  // The next next() returns message `n` (or the first match at or after it).
  result<void> seek(std::uint64_t n);
  // The next message, nullopt at the end, or an error naming the offset.
  result<std::optional<record>> next();
  // The raw bytes of chunk `i` (head and payload), checked.
  result<std::string> raw_chunk(std::uint32_t i) const;

 private:
  friend result<repair_report> repair(const std::string& path, const std::string& out);
  reader() = default;
  result<void> read_at(std::uint64_t offset, std::size_t n, std::string& out) const;
  result<void> load_footer();
  result<void> scan();
  // Reads and checks the chunk at `offset`; fills spans of its records.
  result<void> load_chunk(std::uint64_t offset, std::string& payload,
                          std::vector<std::pair<std::uint32_t, std::uint32_t>>& spans,
                          std::uint32_t* bytes_out = nullptr) const;
  bool chunk_allowed(std::uint32_t i) const;

  int fd_ = -1;
  std::string path_;
  std::uint64_t size_ = 0, data_begin_ = 0, data_end_ = 0;
  bag::header header_;
  bag::index index_;
  std::string note_;

  filter filter_;
  std::vector<bool> allowed_;  // per chunk, from the index; empty: all
  std::uint32_t chunk_ = 0;    // next chunk to load
  std::string payload_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans_;  // offset, length in payload_
  std::size_t pos_ = 0;        // next record in spans_
  std::uint64_t next_index_ = 0;
  bool loaded_ = false;
};

struct repair_report {
  std::uint64_t chunks = 0, messages = 0;
  std::uint64_t dropped_bytes = 0;  // after the last complete chunk (a cut-off write)
  std::string note;                 // why the old index was not used, if it was not
};

// Rebuilds the index of `path` from its chunks and writes header, the valid chunks and a new
// footer to `out` (default: `path` itself, replaced atomically).
result<repair_report> repair(const std::string& path, const std::string& out = {});

}  // namespace gfdit::bag
