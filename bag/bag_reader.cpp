#include "bag/bag_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bag/bag_writer.hpp"
#include "bag/crc32c.hpp"

namespace gfdit::bag {
namespace {

std::string at(const std::string& path, std::uint64_t offset) {
  return "bag '" + path + "' at offset " + std::to_string(offset) + ": ";
}

// An error about the chunk at `offset` without the prefix naming the bag (and that offset).
std::string check_failed(const std::string& path, std::uint64_t offset, std::string what) {
  for (const std::string& p : {at(path, offset), "bag '" + path + "' "})
    if (what.starts_with(p)) return what.substr(p.size());
  return what;
}

}  // namespace

reader::~reader() {
  if (fd_ >= 0) ::close(fd_);
}

result<void> reader::read_at(std::uint64_t offset, std::size_t n, std::string& out) const {
  if (offset > size_ || n > size_ - offset)
    return make_error(errc::decode_failed, at(path_, offset) + "wants " + std::to_string(n) +
                                               " bytes, the file ends at " + std::to_string(size_));
  out.resize(n);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, out.data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return make_error(errc::io, at(path_, offset + done) +
                                      "read failed: " + (r < 0 ? std::strerror(errno) : "unexpected end of file"));
    done += static_cast<std::size_t>(r);
  }
  return {};
}

result<std::unique_ptr<reader>> reader::open(const std::string& path, open_options o) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(errc::io, "bag '" + path + "': cannot open: " + std::strerror(errno));
  std::unique_ptr<reader> r(new reader());
  r->fd_ = fd;
  r->path_ = path;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(errc::io, "bag '" + path + "': stat failed");
  r->size_ = static_cast<std::uint64_t>(st.st_size);
  std::string prefix;
  if (auto e = r->read_at(0, file_prefix_bytes, prefix); !e)
    return make_error(errc::decode_failed, "bag '" + path + "': too short for a bag header");
  if (std::string_view(prefix).substr(0, 8) != file_magic)
    return make_error(errc::decode_failed, at(path, 0) + "not a gfdit bag (bad magic)");
  const std::uint32_t version = get_u32(prefix.data() + 8);
  if (version != format_version)
    return make_error(errc::decode_failed, at(path, 8) + "format version " + std::to_string(version) +
                                               ", this reader knows " + std::to_string(format_version));
  const std::uint32_t hlen = get_u32(prefix.data() + 12);
  const std::uint32_t hcrc = get_u32(prefix.data() + 16);
  if (hlen > max_header_bytes)
    return make_error(errc::too_large, at(path, 12) + "header length " + std::to_string(hlen) + " exceeds the limit");
  std::string body;
  if (auto e = r->read_at(file_prefix_bytes, hlen, body); !e) return e.err();
  if (crc32c(body) != hcrc) return make_error(errc::decode_failed, at(path, file_prefix_bytes) + "header CRC mismatch");
  auto h = decode_header(body);
  if (!h) return make_error(errc::decode_failed, at(path, file_prefix_bytes) + h.err().what);
  r->header_ = std::move(*h);
  r->data_begin_ = file_prefix_bytes + hlen;
  if (o.scan) {
    r->note_ = "index rebuilt on request";
  } else if (auto f = r->load_footer(); !f) {
    r->note_ = f.err().what;
  }
  if (!r->note_.empty()) {
    if (auto s = r->scan(o.resync); !s) return s.err();
    r->index_.recovered = true;
  }
  return r;
}

result<void> reader::load_footer() {
  if (size_ < data_begin_ + trailer_bytes + 12)
    return make_error(errc::decode_failed, "no index footer (the bag was not closed)");
  std::string t;
  if (auto e = read_at(size_ - trailer_bytes, trailer_bytes, t); !e) return e;
  if (std::string_view(t).substr(8) != end_magic)
    return make_error(errc::decode_failed, "no index footer (the bag was not closed)");
  const std::uint64_t ix_at = get_u64(t.data());
  if (ix_at < data_begin_ || ix_at > size_ - trailer_bytes - 12)
    return make_error(errc::decode_failed,
                      at(path_, size_ - trailer_bytes) + "index offset " + std::to_string(ix_at) + " out of range");
  std::string head;
  if (auto e = read_at(ix_at, 12, head); !e) return e;
  if (std::string_view(head).substr(0, 4) != index_magic)
    return make_error(errc::decode_failed, at(path_, ix_at) + "bad index magic");
  const std::uint32_t len = get_u32(head.data() + 4);
  if (len > max_index_bytes || ix_at + 12 + len != size_ - trailer_bytes)
    return make_error(errc::decode_failed,
                      at(path_, ix_at + 4) + "index length " + std::to_string(len) + " does not fit the file");
  std::string body;
  if (auto e = read_at(ix_at + 12, len, body); !e) return e;
  if (crc32c(body) != get_u32(head.data() + 8))
    return make_error(errc::decode_failed, at(path_, ix_at) + "index CRC mismatch");
  auto ix = decode_index(body);
  if (!ix) return make_error(errc::decode_failed, at(path_, ix_at + 12) + ix.err().what);
  // The index must describe chunks that lie inside the data region, in order.
  std::uint64_t expect = data_begin_, n = 0;
  for (const auto& c : ix->chunks) {
    if (c.offset != expect || c.first_index != n)
      return make_error(errc::decode_failed, at(path_, ix_at) + "index lists a chunk at " + std::to_string(c.offset) +
                                                 ", expected " + std::to_string(expect));
    expect += chunk_head_bytes + c.bytes;
    n += c.count;
  }
  if (expect != ix_at || n != ix->count)
    return make_error(errc::decode_failed, at(path_, ix_at) + "index does not cover the data");
  index_ = std::move(*ix);
  data_end_ = ix_at;
  return {};
}

result<void> reader::load_chunk(std::uint64_t offset, std::string& payload,
                                std::vector<std::pair<std::uint32_t, std::uint32_t>>& spans,
                                std::uint32_t* bytes_out) const {
  std::string head;
  if (auto e = read_at(offset, chunk_head_bytes, head); !e) return e;
  if (std::string_view(head).substr(0, 4) != chunk_magic)
    return make_error(errc::decode_failed, at(path_, offset) + "not a chunk (bad magic)");
  const std::uint32_t len = get_u32(head.data() + 4);
  const std::uint32_t count = get_u32(head.data() + 8);
  if (len > max_chunk_bytes || count > len / 5)
    return make_error(errc::decode_failed, at(path_, offset) + "chunk claims " + std::to_string(len) + " bytes / " +
                                               std::to_string(count) + " records");
  if (auto e = read_at(offset + chunk_head_bytes, len, payload); !e) return e;
  const std::uint32_t crc = crc32c(payload, crc32c(head.data(), 12));
  if (crc != get_u32(head.data() + 12))
    return make_error(errc::decode_failed, at(path_, offset) + "chunk CRC mismatch");
  spans.clear();
  std::uint32_t p = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (len - p < 4)
      return make_error(errc::decode_failed, at(path_, offset + chunk_head_bytes + p) + "record length cut off");
    const std::uint32_t n = get_u32(payload.data() + p);
    p += 4;
    if (n > len - p)
      return make_error(errc::decode_failed, at(path_, offset + chunk_head_bytes + p - 4) + "record of " +
                                                 std::to_string(n) + " bytes overruns its chunk");
    spans.emplace_back(p, n);
    p += n;
  }
  if (p != len) return make_error(errc::decode_failed, at(path_, offset) + "chunk has bytes after its last record");
  if (bytes_out) *bytes_out = len;
  return {};
}

result<void> reader::add_chunk(std::uint64_t offset, std::uint32_t bytes, const std::string& payload,
                               const std::vector<std::pair<std::uint32_t, std::uint32_t>>& spans) {
  std::vector<envelope> envs;
  envs.reserve(spans.size());
  for (const auto& [p, n] : spans) {
    auto env = decode_envelope(std::string_view(payload).substr(p, n));
    if (!env) return make_error(errc::decode_failed, at(path_, offset + chunk_head_bytes + p) + env.err().what);
    envs.push_back(std::move(*env));
  }
  const auto chunk_no = static_cast<std::uint32_t>(index_.chunks.size());
  chunk_info info{offset, bytes, static_cast<std::uint32_t>(envs.size()), index_.count, 0, 0};
  bool first = true;
  for (const auto& env : envs) {
    if (first || env.time.wall_ns < info.first_ns) info.first_ns = env.time.wall_ns;
    if (first || env.time.wall_ns > info.last_ns) info.last_ns = env.time.wall_ns;
    first = false;
    index_.add(chunk_no, env);
  }
  index_.chunks.push_back(info);
  return {};
}

result<void> reader::scan(bool resync) {
  index_ = {};
  damaged_.clear();
  std::uint64_t off = data_begin_, good_end = data_begin_;
  std::string payload;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;
  while (resync ? off < size_ : off + chunk_head_bytes <= size_) {
    // The footer's own magic ends the data normally (a footer cut off included).
    std::string m;
    if (read_at(off, 4, m) && m == index_magic) break;
    std::uint32_t bytes = 0;
    result<void> r =
        size_ - off < chunk_head_bytes
            ? result<void>(make_error(errc::decode_failed, at(path_, off) + "cut off: " + std::to_string(size_ - off) +
                                                               " bytes, less than a chunk head"))
            : load_chunk(off, payload, spans, &bytes);
    const bool checked = r.ok();
    if (r) r = add_chunk(off, bytes, payload, spans);
    if (r) {
      off += chunk_head_bytes + bytes;
      good_end = off;
      continue;
    }
    if (!resync) {
      if (checked) return r.err();  // its CRC holds, so the writer wrote what does not decode
      note_ += "; readable up to offset " + std::to_string(off) + " (" + r.err().what + ")";
      break;
    }
    damaged_chunk d{.offset = off, .what = check_failed(path_, off, r.err().what)};
    const std::uint64_t next = resume_after(off, d);
    d.bytes = next - off;
    note_ += "; skipped " + std::to_string(d.bytes) + " bytes at offset " + std::to_string(off) + " (" + d.what + ")";
    damaged_.push_back(std::move(d));
    off = next;
  }
  data_end_ = resync ? good_end : off;
  return {};
}

bool reader::plausible_head(std::uint64_t offset, std::uint32_t& len, std::uint32_t& count) const {
  std::string head;
  if (!read_at(offset, chunk_head_bytes, head) || std::string_view(head).substr(0, 4) != chunk_magic) return false;
  len = get_u32(head.data() + 4);
  count = get_u32(head.data() + 8);
  return len <= max_chunk_bytes && count <= len / 5 && offset + chunk_head_bytes + len <= size_;
}

bool reader::valid_chunk(std::uint64_t offset) const {
  std::string payload;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;
  return load_chunk(offset, payload, spans).ok();
}

bool reader::footer_at(std::uint64_t offset) const {
  std::string head, trailer;
  if (!read_at(offset, 12, head) || std::string_view(head).substr(0, 4) != index_magic) return false;
  if (offset + 12 + get_u32(head.data() + 4) + trailer_bytes != size_) return false;
  return read_at(size_ - trailer_bytes, trailer_bytes, trailer) && std::string_view(trailer).substr(8) == end_magic &&
         get_u64(trailer.data()) == offset;
}

bool reader::boundary(std::uint64_t offset) const {
  // A few damaged chunks in a row whose heads (lengths) are intact still chain to valid data;
  // each is then reported on its own.
  for (int hops = 0; hops < 64; ++hops) {
    if (offset == size_ || footer_at(offset) || valid_chunk(offset)) return true;
    std::uint32_t len = 0, count = 0;
    if (!plausible_head(offset, len, count)) return false;
    offset += chunk_head_bytes + len;
  }
  return false;
}

std::uint64_t reader::resume_after(std::uint64_t offset, damaged_chunk& d) const {
  // Its length cannot be trusted (a damaged one may even point at a later chunk, past good
  // ones): search the bytes after its magic for the next chunk head or the footer. A candidate
  // counts only if it is valid or chains to valid data, so a "GFCK" inside a payload is not
  // taken for a chunk; a valid chunk is never passed over.
  constexpr std::size_t window = 1 << 20;
  std::string buf;
  std::uint64_t next = size_;
  for (std::uint64_t base = offset + 1; base + 4 <= size_ && next == size_; base += window) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(window + 3, size_ - base));  // 3: a magic across windows
    if (!read_at(base, n, buf)) break;
    for (auto i = buf.find("GF"); i != std::string::npos && i < window && i + 4 <= n; i = buf.find("GF", i + 1)) {
      const std::string_view m = std::string_view(buf).substr(i, 4);
      const std::uint64_t p = base + i;
      std::uint32_t len = 0, count = 0;
      if ((m == chunk_magic &&
           (valid_chunk(p) || (plausible_head(p, len, count) && boundary(p + chunk_head_bytes + len)))) ||
          (m == index_magic && footer_at(p))) {
        next = p;
        break;
      }
    }
  }
  // Its count is believed where its length leads exactly to where valid data begins again.
  std::string head;
  if (!read_at(offset, chunk_head_bytes, head)) {
    d.cut_off = next == size_;
    return next;
  }
  if (std::string_view(head).substr(0, 4) != chunk_magic) return next;
  const std::uint32_t len = get_u32(head.data() + 4), count = get_u32(head.data() + 8);
  if (len > max_chunk_bytes || count > len / 5) return next;
  if (offset + chunk_head_bytes + len == next) d.count = count;
  // A right head whose chunk runs past the end of the file, nothing valid after it: the write
  // was cut short (what a writer that died leaves), not damage.
  if (next == size_ && offset + chunk_head_bytes + len > size_) {
    d.cut_off = true;
    d.count = count;
  }
  return next;
}

std::vector<damaged_chunk> reader::verify() const {
  std::vector<damaged_chunk> out;
  std::string payload;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;
  for (const auto& c : index_.chunks) {
    auto r = load_chunk(c.offset, payload, spans);
    if (r && spans.size() != c.count)
      r = make_error(errc::decode_failed, "chunk holds " + std::to_string(spans.size()) + " records, the index says " +
                                              std::to_string(c.count));
    if (!r)
      out.push_back(
          {c.offset, chunk_head_bytes + c.bytes, c.count, check_failed(path_, c.offset, r.err().what), false});
  }
  return out;
}

bool reader::chunk_allowed(std::uint32_t i) const { return allowed_.empty() || allowed_[i]; }

void reader::set_filter(filter f) {
  filter_ = std::move(f);
  filter_.resolve();
  allowed_.clear();
  const auto n = index_.chunks.size();
  auto restrict = [&](const std::vector<std::uint32_t>& chunks) {
    std::vector<bool> mask(n, false);
    for (auto c : chunks)
      if (c < n) mask[c] = true;
    if (allowed_.empty())
      allowed_ = std::move(mask);
    else
      for (std::size_t i = 0; i < n; ++i) allowed_[i] = allowed_[i] && mask[i];
  };
  auto gather = [](const std::map<std::string, name_stats>& m, const std::vector<std::string>& names) {
    std::vector<std::uint32_t> out;
    for (const auto& name : names)
      if (auto it = m.find(name); it != m.end())
        out.insert(out.end(), it->second.chunks.begin(), it->second.chunks.end());
    return out;
  };
  if (!filter_.topics.empty()) restrict(gather(index_.topics, filter_.topics));
  if (!filter_.senders.empty()) restrict(gather(index_.senders, filter_.senders));
  if (!filter_.actors.empty()) {
    std::vector<std::uint32_t> all;
    for (const auto& a : filter_.actors) {
      auto c = index_.chunks_of_actor(a);
      all.insert(all.end(), c.begin(), c.end());
    }
    restrict(all);
  }
}

result<void> reader::seek(std::uint64_t n) {
  const auto& cs = index_.chunks;
  auto it =
      std::upper_bound(cs.begin(), cs.end(), n, [](std::uint64_t v, const chunk_info& c) { return v < c.first_index; });
  chunk_ = static_cast<std::uint32_t>(it == cs.begin() ? 0 : (it - cs.begin()) - 1);
  loaded_ = false;
  next_index_ = n;
  return {};
}

result<std::optional<record>> reader::next() {
  while (true) {
    if (!loaded_) {
      while (chunk_ < index_.chunks.size() &&
             (!chunk_allowed(chunk_) || index_.chunks[chunk_].first_index + index_.chunks[chunk_].count <= next_index_))
        ++chunk_;
      if (chunk_ >= index_.chunks.size()) return std::optional<record>{};
      const auto& c = index_.chunks[chunk_];
      if (auto r = load_chunk(c.offset, payload_, spans_); !r) return r.err();
      if (spans_.size() != c.count)
        return make_error(errc::decode_failed, at(path_, c.offset) + "chunk holds " + std::to_string(spans_.size()) +
                                                   " records, the index says " + std::to_string(c.count));
      pos_ = next_index_ > c.first_index ? static_cast<std::size_t>(next_index_ - c.first_index) : 0;
      next_index_ = c.first_index + pos_;
      loaded_ = true;
    }
    if (pos_ >= spans_.size()) {
      loaded_ = false;
      ++chunk_;
      continue;
    }
    const auto [p, n] = spans_[pos_++];
    const std::uint64_t idx = next_index_++;
    auto env = decode_envelope(std::string_view(payload_).substr(p, n));
    if (!env)
      return make_error(errc::decode_failed,
                        at(path_, index_.chunks[chunk_].offset + chunk_head_bytes + p) + env.err().what);
    if (!filter_.empty() && !filter_.match(*env)) continue;
    return std::optional<record>{record{idx, std::move(*env)}};
  }
}

result<std::string> reader::raw_chunk(std::uint32_t i) const {
  if (i >= index_.chunks.size()) return make_error(errc::invalid_argument, "no chunk " + std::to_string(i));
  const auto& c = index_.chunks[i];
  std::string payload;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;
  if (auto r = load_chunk(c.offset, payload, spans); !r) return r.err();
  std::string out;
  if (auto r = read_at(c.offset, chunk_head_bytes + c.bytes, out); !r) return r.err();
  return out;
}

result<repair_report> repair(const std::string& path, const std::string& out) {
  if (out.empty())
    return make_error(errc::invalid_argument,
                      "repair: no output path (pass the input's own path to repair it in place)");
  auto old = reader::open(path);
  if (!old) return old.err();
  auto r = reader::open(path, {.scan = true, .resync = true});
  if (!r) return r.err();
  const bool had_footer = (*old)->recovery_note().empty();
  repair_report rep;
  rep.note = (*old)->recovery_note();
  rep.skipped = (*r)->damaged();
  // A footer that still checks knows what each skipped chunk held, whatever its head says now.
  if (had_footer)
    for (auto& s : rep.skipped) {
      std::uint64_t n = 0;
      bool any = false;
      for (const auto& c : (*old)->idx().chunks)
        if (c.offset >= s.offset && c.offset < s.offset + s.bytes) {
          n += c.count;
          any = true;
        }
      if (any) s.count = static_cast<std::uint32_t>(n);
    }
  // The chunks kept, back to back from the end of the header: their offsets change.
  bag::index ix = (*r)->idx();
  std::uint64_t end = (*r)->data_begin();
  for (auto& c : ix.chunks) {
    c.offset = end;
    end += chunk_head_bytes + c.bytes;
  }
  rep.chunks = ix.chunks.size();
  rep.messages = ix.count;
  const std::uint64_t old_end = had_footer ? (*old)->data_end() : (*old)->file_size();
  rep.dropped_bytes = old_end > end ? old_end - end : 0;
  const std::string tmp = out + ".repair-tmp";
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return make_error(errc::io, "repair: cannot create '" + tmp + "': " + std::strerror(errno));
    auto put = [&](const std::string& bytes) -> result<void> {
      std::size_t done = 0;
      while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(errc::io, "repair: write to '" + tmp + "' failed: " + std::strerror(errno));
        done += static_cast<std::size_t>(n);
      }
      return {};
    };
    result<void> ok;
    std::string prefix;
    if (ok = (*r)->read_at(0, (*r)->data_begin(), prefix); ok) ok = put(prefix);
    for (std::uint32_t i = 0; ok && i < (*r)->idx().chunks.size(); ++i) {
      auto raw = (*r)->raw_chunk(i);
      ok = raw ? put(*raw) : result<void>(raw.err());
    }
    if (ok) {
      const std::string body = encode_index(ix);
      std::string tail(index_magic);
      put_u32(tail, static_cast<std::uint32_t>(body.size()));
      put_u32(tail, crc32c(body));
      tail += body;
      put_u64(tail, end);
      tail += end_magic;
      ok = put(tail);
    }
    if (::fsync(fd) != 0 && ok) ok = make_error(errc::io, "repair: fsync failed");
    ::close(fd);
    if (!ok) {
      ::unlink(tmp.c_str());
      return ok.err();
    }
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return make_error(errc::io, "repair: cannot rename '" + tmp + "' to '" + out + "': " + why);
  }
  return rep;
}

}  // namespace gfdit::bag
