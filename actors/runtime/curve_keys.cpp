#include "actors/runtime/curve_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>

#include <zmq.h>

#include "common/text.hpp"

namespace gfdit {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t z85_key_length = 40;
constexpr std::uintmax_t max_key_file = 4096;

// A key file holds one Z85 key; surrounding blanks and a trailing newline are allowed.
result<std::string> read_z85(const fs::path& file) {
  auto text = read_text(file, max_key_file);
  if (!text) return text.err();
  std::string key = *text;
  const auto first = key.find_first_not_of(" \t\r\n");
  const auto last = key.find_last_not_of(" \t\r\n");
  key = first == std::string::npos ? "" : key.substr(first, last - first + 1);
  std::uint8_t raw[32];
  if (key.size() != z85_key_length || !zmq_z85_decode(raw, key.c_str()))
    return make_error(errc::invalid_argument,
                      file.string() + ": not a CurveZMQ key (one line of 40 Z85 characters expected)");
  return key;
}

result<void> write_file(const fs::path& file, const std::string& text, mode_t mode) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return make_error(errc::io, file.string() + ": " + std::strerror(errno));
  // The umask may have taken bits away, never added any; set exactly what was asked.
  const bool ok = ::fchmod(fd, mode) == 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) return make_error(errc::io, file.string() + ": " + std::strerror(saved));
  return {};
}

}  // namespace

std::string key_ring::public_of(const std::string& name) const {
  auto it = by_name.find(name);
  return it == by_name.end() ? std::string() : it->second;
}

bool curve_available() { return zmq_has("curve") != 0; }

bool valid_key_name(const std::string& name) {
  static const std::regex re("[A-Za-z0-9_][A-Za-z0-9_.\\-]*");
  return std::regex_match(name, re);
}

result<curve_key_pair> make_curve_key_pair() {
  if (!curve_available()) return make_error(errc::state, "this libzmq has no CURVE support (built without libsodium)");
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0)
    return make_error(errc::io, std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  return curve_key_pair{pub, sec};
}

result<void> write_key_pair(const fs::path& dir, const std::string& name, const curve_key_pair& pair) {
  if (!valid_key_name(name))
    return make_error(errc::invalid_argument, "key name '" + name + "' may hold only letters, digits, '_', '-', '.'");
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return make_error(errc::io, dir.string() + ": " + ec.message());
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  const fs::path secret = dir / (name + ".key"), pub = dir / (name + ".pub");
  if (fs::exists(secret, ec) || fs::exists(pub, ec))
    return make_error(errc::invalid_argument, "a key named '" + name + "' exists already in " + dir.string() +
                                                  " (remove " + secret.filename().string() + " and " +
                                                  pub.filename().string() + " to replace it)");
  if (auto r = write_file(secret, pair.secret_key + "\n", 0600); !r) return r;
  return write_file(pub, pair.public_key + "\n", 0644);
}

result<curve_key_pair> read_key_pair(const fs::path& secret_file) {
  struct stat st {};
  if (::stat(secret_file.c_str(), &st) != 0)
    return make_error(errc::not_found, secret_file.string() + ": " + std::strerror(errno));
  if (st.st_mode & 077)
    return make_error(errc::invalid_argument,
                      secret_file.string() + ": a secret key other users may read (chmod 600 it)");
  auto secret = read_z85(secret_file);
  if (!secret) return secret.err();
  char pub[41] = {};
  if (zmq_curve_public(pub, secret->c_str()) != 0)
    return make_error(errc::io, secret_file.string() + ": zmq_curve_public: " + zmq_strerror(zmq_errno()));
  fs::path pub_file = secret_file;
  pub_file.replace_extension(".pub");
  std::error_code ec;
  if (fs::exists(pub_file, ec)) {
    auto listed = read_z85(pub_file);
    if (!listed) return listed.err();
    if (*listed != pub)
      return make_error(errc::invalid_argument,
                        pub_file.string() + ": not the public key of " + secret_file.filename().string());
  }
  return curve_key_pair{pub, *secret};
}

result<key_ring> read_key_ring(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error(errc::not_found, "key folder '" + dir.string() + "' does not exist");
  key_ring ring;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".pub") continue;
    const std::string name = e.path().stem().string();
    if (!valid_key_name(name))
      return make_error(errc::invalid_argument,
                        e.path().string() + ": a key name may hold only letters, digits, '_', '-', '.'");
    auto key = read_z85(e.path());
    if (!key) return key.err();
    if (auto [it, added] = ring.by_public.emplace(*key, name); !added)
      return make_error(errc::invalid_argument,
                        e.path().string() + ": the same public key as " + it->second + ".pub (one key, one name)");
    ring.by_name[name] = *key;
  }
  if (ec) return make_error(errc::io, dir.string() + ": " + ec.message());
  if (ring.empty()) return make_error(errc::not_found, "key folder '" + dir.string() + "' holds no *.pub file");
  return ring;
}

}  // namespace gfdit
