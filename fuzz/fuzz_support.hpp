#pragma once
// What more than one fuzz target needs: the input as a file, for entry points that read a path
// (bags, safetensors, launch files). One file per process, rewritten for every input, in
// $TMPDIR (run.sh points it at build-fuzz/), removed at exit.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace gfdit::fuzz {

class temp_file {
 public:
  // `suffix` matters where the loader looks at the name (".yaml").
  explicit temp_file(const std::string& suffix = "") {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/gfdit-fuzz-" + std::to_string(::getpid()) + suffix;
  }
  ~temp_file() { std::remove(path_.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  // Replaces the file's contents with `data`; the path to hand to the loader.
  const std::string& write(const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) std::abort();  // the harness's own failure, never the code under test
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace gfdit::fuzz
