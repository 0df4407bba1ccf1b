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

#include "bag/bag_format.hpp"

namespace gfdit::bag {

struct record {
  std::uint64_t index = 0;  // position in the bag, from 0
  envelope env;
};

struct repair_report;

// A stretch of the data region a scan skipped: a chunk that fails its checks, or bytes that are
// no chunk, up to where valid data begins again.
struct damaged_chunk {
  std::uint64_t offset = 0;            // in the file
  std::uint64_t bytes = 0;             // skipped: to the next valid chunk, the footer or the end of the file
  std::optional<std::uint32_t> count;  // messages it held, where known (its head, or the footer)
  std::string what;                    // the check that failed
  bool cut_off = false;                // runs past the end of the file, nothing valid after: a write cut short
};

struct open_options {
  bool scan = false;    // ignore the footer and rebuild the index from the chunks
  bool resync = false;  // scanning: go on after a chunk that fails its checks, at the next valid
                        // chunk head (damaged() lists what was skipped); else the scan stops there
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
  // What a scan with `resync` skipped, in file order.
  const std::vector<damaged_chunk>& damaged() const { return damaged_; }
  // Reads every chunk of the index and checks it (head, CRC, record lengths): those that fail.
  std::vector<damaged_chunk> verify() const;

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
  result<void> scan(bool resync);
  // Adds a checked chunk to the index, or says which record does not decode (the index unchanged).
  result<void> add_chunk(std::uint64_t offset, std::uint32_t bytes, const std::string& payload,
                         const std::vector<std::pair<std::uint32_t, std::uint32_t>>& spans);
  // Resynchronising after damage at `offset`: where valid data begins again (size_ if nowhere).
  std::uint64_t resume_after(std::uint64_t offset, damaged_chunk& d) const;
  // A chunk head whose magic and lengths are possible here (its CRC unchecked).
  bool plausible_head(std::uint64_t offset, std::uint32_t& len, std::uint32_t& count) const;
  bool valid_chunk(std::uint64_t offset) const;
  bool footer_at(std::uint64_t offset) const;
  // Valid data (a chunk, the footer, the end of the file) begins at `offset`, possibly after a
  // run of damaged chunks whose heads still chain to it.
  bool boundary(std::uint64_t offset) const;
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
  std::vector<damaged_chunk> damaged_;

  filter filter_;
  std::vector<bool> allowed_;  // per chunk, from the index; empty: all
  std::uint32_t chunk_ = 0;    // next chunk to load
  std::string payload_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans_;  // offset, length in payload_
  std::size_t pos_ = 0;                                         // next record in spans_
  std::uint64_t next_index_ = 0;
  bool loaded_ = false;
};

struct repair_report {
  std::uint64_t chunks = 0, messages = 0;  // kept
  std::uint64_t dropped_bytes = 0;         // of the data region not kept (damage, a cut-off end, a partial footer)
  std::vector<damaged_chunk> skipped;      // what was not kept, in file order
  std::string note;                        // why the old index was not used, if it was not
  // A chunk was dropped for damage (not only an end cut off mid-write).
  bool damaged() const {
    for (const auto& s : skipped)
      if (!s.cut_off) return true;
    return false;
  }
};

// Rebuilds the index of `path` from its chunks and writes header, every valid chunk (damaged
// ones skipped, see damaged_chunk) and a new footer to `out`, through a temporary file beside it
// and a rename. `out` may be `path` (repaired in place).
result<repair_report> repair(const std::string& path, const std::string& out);

}  // namespace gfdit::bag
