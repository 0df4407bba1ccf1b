#pragma once
// The journal of admitted requests: a small append-only file, so that a control process killed
// and restarted loses nothing it admitted. Admission writes it (an `admitted` record before its
// Admitted leaves, a `finished` one when the RequestDone comes); on restart, admission takes its
// next id and its bounded queue from it, and the scheduler re-runs every request still open.
//
// A record is [u32 body length][u32 fnv1a32 of the body][body], little-endian; the body is a
// kind byte then its payload: 'A' + the encoded msg::admitted, 'F' + the request id (u64),
// 'N' + the next id to assign (u64, written by compaction). Reading stops at the first record
// that is short or fails its checksum: a torn last write (the process died inside it) is ignored.
// Admitted records are fdatasync'd before they count (they are the promise made to a client);
// finished ones are not (losing one re-runs a request whose answer was already sent, harmless).
// Opening rewrites the file with only the open requests, and so does a journal that has grown
// past `compact_bytes` with most of it finished, so it stays small.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "messages/serving.hpp"

namespace gfdit {

// Where a journal named `configured` lives: a relative name is taken inside the run folder of
// `gfdit launch` (it survives a restart of the process and goes with the run), else the cwd.
std::string journal_path(const std::string& configured);

class request_journal {
 public:
  struct contents {
    std::vector<msg::admitted> open;  // admitted, not finished, in admission order
    std::uint64_t next_id = 1;        // above every id the journal has seen
    std::uint64_t ignored_bytes = 0;  // a torn or damaged tail, not read
  };

  // What a journal holds; a missing file holds nothing.
  static result<contents> read(const std::string& path);
  // Reads, compacts and opens for appending; `recovered` is what it held.
  static result<std::unique_ptr<request_journal>> open(const std::string& path, contents& recovered,
                                                       std::uint64_t compact_bytes = 1 << 20);
  ~request_journal();
  request_journal(const request_journal&) = delete;
  request_journal& operator=(const request_journal&) = delete;

  // `encoded`: the msg::admitted as it goes on the wire (written as is, synced).
  result<void> admitted(std::uint64_t request_id, const std::string& encoded);
  result<void> finished(std::uint64_t request_id);

  std::size_t open_count() const noexcept { return open_.size(); }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  request_journal(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  result<void> append(const std::string& body, bool sync);
  // Rewrites the file with the open records only (through a temporary file and a rename).
  result<void> compact();

  std::string path_;
  int fd_ = -1;
  std::uint64_t bytes_ = 0;
  std::uint64_t compact_bytes_ = 1 << 20;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::string> open_;  // id -> its encoded msg::admitted
};

}  // namespace gfdit
