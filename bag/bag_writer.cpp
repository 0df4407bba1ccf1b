#include "bag/bag_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bag/crc32c.hpp"

namespace gfdit::bag {

namespace {

// msgpack, written the way msgpack-cxx packs it (smallest form of every integer, fixstr /
// str8 / str16 / str32, bin8 / bin16 / bin32), straight into a buffer sized once: the recorder
// encodes on the sending thread, so this runs per message on the bus's hot path. The bytes are
// those of encode_envelope (a test holds them equal).
struct raw_packer {
  char* p;
  void byte(unsigned v) { *p++ = static_cast<char>(v); }
  void be(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) *p++ = static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  void uint(std::uint64_t v) {
    if (v < 128)
      byte(static_cast<unsigned>(v));
    else if (v < 256) {
      byte(0xcc);
      be(v, 1);
    } else if (v < 65536) {
      byte(0xcd);
      be(v, 2);
    } else if (v < (1ull << 32)) {
      byte(0xce);
      be(v, 4);
    } else {
      byte(0xcf);
      be(v, 8);
    }
  }
  void sint(std::int64_t v) {
    if (v >= -32) {
      if (v < 128)
        byte(static_cast<unsigned>(v) & 0xFF);
      else
        uint(static_cast<std::uint64_t>(v));
    } else if (v >= -128) {
      byte(0xd0);
      be(static_cast<std::uint64_t>(v), 1);
    } else if (v >= -32768) {
      byte(0xd1);
      be(static_cast<std::uint64_t>(v), 2);
    } else if (v >= -(1ll << 31)) {
      byte(0xd2);
      be(static_cast<std::uint64_t>(v), 4);
    } else {
      byte(0xd3);
      be(static_cast<std::uint64_t>(v), 8);
    }
  }
  void key(char k) {
    byte(0xa1);
    byte(static_cast<unsigned char>(k));
  }
  void str(const std::string& s) {
    const auto n = s.size();
    if (n < 32)
      byte(0xa0 | static_cast<unsigned>(n));
    else if (n < 256) {
      byte(0xd9);
      be(n, 1);
    } else if (n < 65536) {
      byte(0xda);
      be(n, 2);
    } else {
      byte(0xdb);
      be(n, 4);
    }
    std::memcpy(p, s.data(), n);
    p += n;
  }
  void bin(const std::string& s) {
    const auto n = s.size();
    if (n < 256) {
      byte(0xc4);
      be(n, 1);
    } else if (n < 65536) {
      byte(0xc5);
      be(n, 2);
    } else {
      byte(0xc6);
      be(n, 4);
    }
    std::memcpy(p, s.data(), n);
    p += n;
  }
};

}  // namespace

char* chunk_builder::grow(std::size_t n) {
  if (size_ + n > capacity_) {
    const std::size_t cap = std::max<std::size_t>({4096, capacity_ * 2, size_ + n});
    auto fresh = std::make_unique_for_overwrite<char[]>(cap);
    if (size_) std::memcpy(fresh.get(), data_.get(), size_);
    data_ = std::move(fresh);
    capacity_ = cap;
  }
  return data_.get() + size_;
}

void chunk_builder::append(const envelope& env) {
  // 4 length bytes, then at most: map header 1, 11 keys of 2, 10 scalars of 9, 3 headers of 5.
  const std::size_t bound = 4 + 1 + 22 + 90 + 15 + env.sender.size() + env.destination.size() + env.payload.size();
  char* const base = grow(bound);
  raw_packer pk{base + 4};
  pk.byte(0x8b);  // a map of 11
  pk.key('t');
  pk.uint(env.type_id);
  pk.key('v');
  pk.uint(env.version);
  pk.key('q');
  pk.uint(env.seq);
  pk.key('s');
  pk.str(env.sender);
  pk.key('d');
  pk.str(env.destination);
  pk.key('k');
  pk.uint(static_cast<std::uint8_t>(env.kind));
  pk.key('l');
  pk.uint(env.time.logical);
  pk.key('w');
  pk.sint(env.time.wall_ns);
  pk.key('r');
  pk.uint(env.trace_id);
  pk.key('c');
  pk.uint(env.correlation);
  pk.key('p');
  pk.bin(env.payload);
  const auto len = static_cast<std::uint32_t>(pk.p - (base + 4));
  for (int i = 0; i < 4; ++i) base[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
  size_ += 4 + len;
  metas_.push_back({env.kind, env.type_id, env.time.wall_ns, env.sender, env.destination});
}

writer::writer(int fd, std::string path, writer_options o) : fd_(fd), path_(std::move(path)), opt_(std::move(o)) {
  opt_.keep.resolve();
}

writer::~writer() { (void)close(); }

result<std::unique_ptr<writer>> writer::create(const std::string& path, header h, writer_options options) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(errc::io, "bag '" + path + "': cannot create: " + std::strerror(errno));
  std::unique_ptr<writer> w(new writer(fd, path, std::move(options)));
  h.version = format_version;
  const std::string body = encode_header(h);
  std::string prefix(file_magic);
  put_u32(prefix, format_version);
  put_u32(prefix, static_cast<std::uint32_t>(body.size()));
  put_u32(prefix, crc32c(body));
  if (auto r = w->put(prefix); !r) return r.err();
  if (auto r = w->put(body); !r) return r.err();
  return w;
}

result<void> writer::put(std::string_view bytes) {
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(errc::io, "bag '" + path_ + "': write at offset " + std::to_string(offset_) +
                                      " failed: " + std::strerror(errno));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
    offset_ += static_cast<std::uint64_t>(n);
  }
  return {};
}

result<void> writer::write(const envelope& env) {
  if (closed_) return make_error(errc::state, "bag '" + path_ + "' is closed");
  if (!opt_.keep.empty() && !opt_.keep.match(env)) {
    ++filtered_out_;
    return {};
  }
  current_.append(env);
  if (current_.bytes() >= opt_.chunk_bytes) return flush();
  return {};
}

result<void> writer::flush() { return current_.empty() ? result<void>{} : write_chunk(current_); }

result<void> writer::write_chunk(chunk_builder& c) {
  if (closed_) return make_error(errc::state, "bag '" + path_ + "' is closed");
  if (c.empty()) return {};
  if (c.bytes() > max_chunk_bytes)
    return make_error(errc::too_large,
                      "bag '" + path_ + "': a chunk of " + std::to_string(c.bytes()) + " bytes exceeds the limit");
  const auto chunk_no = static_cast<std::uint32_t>(index_.chunks.size());
  chunk_info info{offset_, static_cast<std::uint32_t>(c.bytes()), c.count(), index_.count, 0, 0};
  bool first = true;
  for (const auto& m : c.metas_) {
    if (first || m.wall_ns < info.first_ns) info.first_ns = m.wall_ns;
    if (first || m.wall_ns > info.last_ns) info.last_ns = m.wall_ns;
    first = false;
    index_.add(chunk_no, m.kind, m.type_id, m.wall_ns, m.sender, m.destination);
  }
  scratch_.assign(chunk_magic);
  put_u32(scratch_, info.bytes);
  put_u32(scratch_, info.count);
  put_u32(scratch_, crc32c(c.payload(), crc32c(scratch_)));
  if (auto r = put(scratch_); !r) return r;
  if (auto r = put(c.payload()); !r) return r;
  index_.chunks.push_back(info);
  c.clear();
  return {};
}

result<void> writer::close() {
  if (closed_) return {};
  auto r = flush();
  closed_ = true;
  if (r) {
    const std::uint64_t at = offset_;
    const std::string body = encode_index(index_);
    std::string tail(index_magic);
    put_u32(tail, static_cast<std::uint32_t>(body.size()));
    put_u32(tail, crc32c(body));
    tail += body;
    put_u64(tail, at);
    tail += end_magic;
    r = put(tail);
  }
  if (::close(fd_) != 0 && r) r = make_error(errc::io, "bag '" + path_ + "': close failed: " + std::strerror(errno));
  fd_ = -1;
  return r;
}

}  // namespace gfdit::bag
