#pragma once
// A rendezvous through a directory on one host (use /dev/shm or a tmpfs): round r of rank k is
// the file "<dir>/<r>.<k>", published by an atomic rename so a reader never sees half a blob.
#include <filesystem>
#include <string>

#include "kernels/collectives/rendezvous.hpp"

namespace gfdit::coll {

class file_rendezvous final : public rendezvous {
 public:
  // `dir` is created if missing; every rank of one world passes the same directory.
  file_rendezvous(std::filesystem::path dir, int rank, int size);
  ~file_rendezvous() override;

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  result<std::vector<std::string>> all_gather(std::string_view mine, std::chrono::milliseconds timeout) override;

 private:
  std::filesystem::path file(int round, int rank) const;

  std::filesystem::path dir_;
  int rank_;
  int size_;
  int round_ = 0;
};

}  // namespace gfdit::coll
