#pragma once
// Helpers for the bag tests: temporary files, synthetic envelopes, and running a tool entry
// point with its stdout captured.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bag/bag_writer.hpp"
#include "messages/envelope.hpp"
#include "messages/example.hpp"

namespace gfdit::testing {

inline std::filesystem::path temp_dir() {
  return std::filesystem::temp_directory_path() / ("gfdit-bag-test-" + std::to_string(::getpid()));
}

// Removes this process's temporary folder when the test binary exits.
inline struct temp_dir_cleaner {
  ~temp_dir_cleaner() {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir(), ec);
  }
} temp_dir_cleaner_instance;

inline std::string temp_path(const std::string& tag) {
  static int n = 0;
  auto dir = temp_dir();
  std::filesystem::create_directories(dir);
  return (dir / (tag + "-" + std::to_string(n++) + ".bag")).string();
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A deterministic mixed stream: directed pings, topic pongs, replies, several senders.
inline envelope synthetic(std::uint64_t i) {
  static const char* actors[] = {"alpha", "beta", "gamma", "delta"};
  envelope e;
  const auto k = i % 3;
  e.sender = actors[i % 4];
  e.seq = i / 4 + 1;
  e.time = {i + 1, 1'700'000'000'000'000'000 + static_cast<std::int64_t>(i) * 1000};
  e.trace_id = i * 7919;
  std::string data(static_cast<std::size_t>(i % 97) * 3, static_cast<char>('a' + i % 26));
  if (k == 0) {
    e.kind = route::direct;
    e.destination = actors[(i + 1) % 4];
    e.type_id = type_id_of<msg::ping>;
    e.version = msg::ping::type_version;
    e.payload = encode(msg::ping{i, data});
  } else if (k == 1) {
    e.kind = route::topic;
    e.destination = i % 2 ? "news" : "weather";
    e.type_id = type_id_of<msg::pong>;
    e.version = msg::pong::type_version;
    e.payload = encode(msg::pong{i, data});
  } else {
    e.kind = route::reply;
    e.destination = actors[(i + 2) % 4];
    e.correlation = i;
    e.type_id = type_id_of<msg::pong>;
    e.version = msg::pong::type_version;
    e.payload = encode(msg::pong{i, data});
  }
  return e;
}

// `chunks` chunks of `per_chunk` synthetic messages each (0, 1, ... in order); without `close`
// it ends after its last chunk, as a writer that died leaves it (no footer).
inline std::string chunked_bag(std::uint32_t chunks, std::uint32_t per_chunk, bool close) {
  const auto path = temp_path("chunked");
  auto w = bag::writer::create(path, bag::header::current("graph: demo\n"));
  if (!w) return path;
  bag::chunk_builder c;
  for (std::uint64_t i = 0; i < std::uint64_t{chunks} * per_chunk; ++i) {
    c.append(synthetic(i));
    if (c.count() == per_chunk) (void)(*w)->write_chunk(c);
  }
  const auto& last = (*w)->idx().chunks.back();
  const auto end = last.offset + bag::chunk_head_bytes + last.bytes;
  (void)(*w)->close();
  if (!close) {
    const auto bytes = read_file(path);
    write_file(path, std::string_view(bytes).substr(0, end));
  }
  return path;
}

inline bool same_envelope(const envelope& a, const envelope& b) {
  return a.type_id == b.type_id && a.version == b.version && a.seq == b.seq && a.sender == b.sender &&
         a.destination == b.destination && a.kind == b.kind && a.time.logical == b.time.logical &&
         a.time.wall_ns == b.time.wall_ns && a.trace_id == b.trace_id && a.correlation == b.correlation &&
         a.payload == b.payload;
}

struct tool_run {
  int rc = 0;
  std::string out, err;
};

// Runs `fn(argc, argv)` with stdout and stderr redirected to files (and stdin read from `input`
// when given), and returns what it printed.
inline tool_run run_tool(const std::function<int(int, char**)>& fn, std::vector<std::string> args,
                         const std::string* input = nullptr) {
  int saved_in = -1;
  if (input) {
    const std::string in_path = temp_path("stdin");
    write_file(in_path, *input);
    saved_in = ::dup(0);
    const int in = ::open(in_path.c_str(), O_RDONLY);
    ::dup2(in, 0);
    ::close(in);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out_path = temp_path("stdout"), err_path = temp_path("stderr");
  std::fflush(stdout);
  std::fflush(stderr);
  const int saved = ::dup(1), saved_err = ::dup(2);
  const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int fd_err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(fd, 1);
  ::dup2(fd_err, 2);
  ::close(fd);
  ::close(fd_err);
  tool_run r;
  r.rc = fn(static_cast<int>(args.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(saved, 1);
  ::dup2(saved_err, 2);
  ::close(saved);
  ::close(saved_err);
  if (saved_in >= 0) {
    ::dup2(saved_in, 0);
    ::close(saved_in);
  }
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string l;
  while (std::getline(ss, l)) out.push_back(l);
  return out;
}

}  // namespace gfdit::testing
