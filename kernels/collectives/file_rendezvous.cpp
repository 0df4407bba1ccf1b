#include "kernels/collectives/file_rendezvous.hpp"

#include <fstream>
#include <iterator>
#include <system_error>
#include <thread>

#include <unistd.h>

namespace gfdit::coll {

file_rendezvous::file_rendezvous(std::filesystem::path dir, int rank, int size)
    : dir_(std::move(dir)), rank_(rank), size_(size) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
}

file_rendezvous::~file_rendezvous() {
  // Our last two rounds may still be read by slower ranks; older ones were removed as we went.
}

std::filesystem::path file_rendezvous::file(int round, int rank) const {
  return dir_ / (std::to_string(round) + "." + std::to_string(rank));
}

result<std::vector<std::string>> file_rendezvous::all_gather(std::string_view mine, std::chrono::milliseconds timeout) {
  const int round = round_++;
  std::error_code ec;
  // Every rank that wrote round-1 has read round-2, so our round-2 file is no longer needed.
  if (round >= 2) std::filesystem::remove(file(round - 2, rank_), ec);
  {
    const auto tmp =
        dir_ / (".tmp." + std::to_string(round) + "." + std::to_string(rank_) + "." + std::to_string(::getpid()));
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(mine.data(), static_cast<std::streamsize>(mine.size()));
    out.close();
    if (!out) return make_error(errc::io, "file_rendezvous: cannot write " + tmp.string());
    std::filesystem::rename(tmp, file(round, rank_), ec);
    if (ec) return make_error(errc::io, "file_rendezvous: rename failed: " + ec.message());
  }
  std::vector<std::string> all(static_cast<std::size_t>(size_));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int r = 0; r < size_; ++r) {
    const auto path = file(round, r);
    for (;;) {
      std::ifstream in(path, std::ios::binary);
      if (in) {
        all[static_cast<std::size_t>(r)].assign(std::istreambuf_iterator<char>(in), {});
        break;
      }
      if (std::chrono::steady_clock::now() > deadline)
        return make_error(errc::timeout,
                          "file_rendezvous: rank " + std::to_string(r) + " missed round " + std::to_string(round));
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  return all;
}

}  // namespace gfdit::coll
