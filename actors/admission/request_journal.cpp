#include "actors/admission/request_journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/hash.hpp"
#include "messages/codec.hpp"

namespace gfdit {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t max_record_bytes = 16u << 20;  // far above any request; a larger length is damage

void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& s, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::uint64_t get_le(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string record(const std::string& body) {
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(body.size()));
  put_u32(out, fnv1a32(body));
  return out + body;
}

std::string id_body(char kind, std::uint64_t id) {
  std::string b(1, kind);
  put_u64(b, id);
  return b;
}

error io_error(const std::string& what, const std::string& path) {
  return make_error(errc::io, what + " '" + path + "': " + std::strerror(errno));
}

result<void> write_all(int fd, const std::string& s, const std::string& path) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot write the journal", path);
    off += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

std::string journal_path(const std::string& configured) {
  if (configured.empty() || fs::path(configured).is_absolute()) return configured;
  // Set by `gfdit launch` for every process it starts (launch/lib/launcher.cpp).
  const char* run_dir = std::getenv("GFDIT_RUN_DIR");
  return run_dir && *run_dir ? (fs::path(run_dir) / configured).string() : configured;
}

result<request_journal::contents> request_journal::read(const std::string& path) {
  contents c;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) return c;
    return io_error("cannot read the journal", path);
  }
  const std::string data((std::istreambuf_iterator<char>(in)), {});
  std::map<std::uint64_t, msg::admitted> open;  // by id: admission order
  std::size_t at = 0;
  while (data.size() - at >= 8) {
    const auto len = static_cast<std::uint32_t>(get_le(data.data() + at, 4));
    const auto sum = static_cast<std::uint32_t>(get_le(data.data() + at + 4, 4));
    if (len == 0 || len > max_record_bytes || data.size() - at - 8 < len) break;
    const std::string_view body(data.data() + at + 8, len);
    if (fnv1a32(body) != sum) break;
    const char kind = body[0];
    if (kind == 'A') {
      auto a = decode<msg::admitted>(body.substr(1));
      if (!a) break;  // checksummed yet undecodable: written by something else; stop here too
      c.next_id = std::max(c.next_id, a->request_id + 1);
      open[a->request_id] = std::move(*a);
    } else if ((kind == 'F' || kind == 'N') && len == 9) {
      const std::uint64_t id = get_le(body.data() + 1, 8);
      if (kind == 'F')
        open.erase(id);
      else
        c.next_id = std::max(c.next_id, id);
    } else {
      break;
    }
    at += 8 + len;
  }
  c.ignored_bytes = data.size() - at;
  for (auto& [id, a] : open) c.open.push_back(std::move(a));
  return c;
}

result<std::unique_ptr<request_journal>> request_journal::open(const std::string& path, contents& recovered,
                                                               std::uint64_t compact_bytes) {
  auto c = read(path);
  if (!c) return c.err();
  recovered = std::move(*c);
  std::unique_ptr<request_journal> j(new request_journal(path, -1));
  j->compact_bytes_ = compact_bytes;
  j->next_id_ = recovered.next_id;
  for (const auto& a : recovered.open) j->open_[a.request_id] = encode(a);
  if (auto r = j->compact(); !r) return r.err();
  return j;
}

request_journal::~request_journal() {
  if (fd_ >= 0) ::close(fd_);
}

result<void> request_journal::append(const std::string& body, bool sync) {
  const std::string rec = record(body);
  if (auto r = write_all(fd_, rec, path_); !r) return r;
  bytes_ += rec.size();
  if (sync && ::fdatasync(fd_) != 0) return io_error("cannot sync the journal", path_);
  return {};
}

result<void> request_journal::admitted(std::uint64_t request_id, const std::string& encoded) {
  if (open_.count(request_id)) return {};  // a resend answered again: already on disk
  if (auto r = append('A' + encoded, true); !r) return r;
  open_[request_id] = encoded;
  next_id_ = std::max(next_id_, request_id + 1);
  return {};
}

result<void> request_journal::finished(std::uint64_t request_id) {
  if (open_.erase(request_id) == 0) return {};  // not ours (admitted before a compaction dropped it, or twice)
  if (auto r = append(id_body('F', request_id), false); !r) return r;
  std::uint64_t open_bytes = 0;
  for (const auto& [id, e] : open_) open_bytes += e.size() + 9;
  if (bytes_ > compact_bytes_ && open_bytes < bytes_ / 2) return compact();
  return {};
}

result<void> request_journal::compact() {
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create", tmp);
  std::string all = record(id_body('N', next_id_));
  for (const auto& [id, e] : open_) all += record('A' + e);
  auto r = write_all(fd, all, tmp);
  if (r && ::fdatasync(fd) != 0) r = io_error("cannot sync", tmp);
  ::close(fd);
  if (!r) return r;
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return io_error("cannot rename the journal onto", path_);
  // The rename itself must reach the disk before the old file's records are trusted gone.
  const std::string dir = fs::path(path_).parent_path().empty() ? "." : fs::path(path_).parent_path().string();
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return io_error("cannot open the journal", path_);
  bytes_ = all.size();
  return {};
}

}  // namespace gfdit
