#pragma once
// Writes a bag: the header at creation, chunks as they fill, the index footer at close().
// Until close() the file is a valid *unclosed* bag: a reader recovers every complete chunk.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bag/bag_format.hpp"

namespace gfdit::bag {

// The encoded records of one chunk, built wherever envelopes are seen (the recorder's tap
// thread) and handed whole to a writer, so the hot path is one encode into a reused buffer.
class chunk_builder {
 public:
  void append(const envelope& env);
  std::size_t bytes() const { return size_; }
  std::uint32_t count() const { return static_cast<std::uint32_t>(metas_.size()); }
  bool empty() const { return metas_.empty(); }
  std::string_view payload() const { return {data_.get(), size_}; }
  // Room for `n` bytes before the next allocation.
  void reserve(std::size_t n) {
    if (n > capacity_) grow(n - size_);
  }
  // Keeps the memory for the next chunk.
  void clear() {
    size_ = 0;
    metas_.clear();
  }

 private:
  friend class writer;
  struct meta {
    route kind;
    std::uint32_t type_id;
    std::int64_t wall_ns;
    std::string sender, destination;
  };
  char* grow(std::size_t n);  // room for n more bytes (uninitialised), returns where
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0, capacity_ = 0;
  std::vector<meta> metas_;
};

struct writer_options {
  std::size_t chunk_bytes = 1u << 20;  // write() closes a chunk once it holds this much
  filter keep;                         // write() drops what it does not match
};

class writer {
 public:
  static result<std::unique_ptr<writer>> create(const std::string& path, header h, writer_options options = {});
  ~writer();  // close()s, ignoring its error
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  // Filtered; buffered until the chunk is full.
  result<void> write(const envelope& env);
  // Writes `c` as one chunk (no filter: the builder's owner chose) and clears it.
  result<void> write_chunk(chunk_builder& c);
  // The buffered part of the current chunk becomes a chunk on disk.
  result<void> flush();
  // Last chunk, index footer, trailer. Idempotent.
  result<void> close();

  const bag::index& idx() const { return index_; }
  std::uint64_t filtered_out() const { return filtered_out_; }
  const std::string& path() const { return path_; }

 private:
  writer(int fd, std::string path, writer_options o);
  result<void> put(std::string_view bytes);

  int fd_ = -1;
  std::string path_;
  writer_options opt_;
  std::uint64_t offset_ = 0;
  chunk_builder current_;
  bag::index index_;
  std::uint64_t filtered_out_ = 0;
  std::string scratch_;
  bool closed_ = false;
};

}  // namespace gfdit::bag
