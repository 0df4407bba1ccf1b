// The launch-file loader on one YAML file: structure, keys and types, args and their
// $(arg ...) / $(env ...) / $(index) / $(dirname) substitution, replicas, includes (relative to
// the file's folder: cyclic or missing ones are errors), within its limits. Command-line
// overrides come from the input's first line when it starts with "#!": "#!a:=1 b:=2".
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "launch/lib/launch_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static gfdit::fuzz::temp_file in(".yaml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  if (text.rfind("#!", 0) == 0) {
    std::istringstream first(text.substr(2, text.find('\n') - 2));
    for (std::string o; first >> o;) overrides.push_back(o);
  }
  auto g = gfdit::launch::load(in.write(data, size), overrides);
  if (g) (void)gfdit::launch::to_flat_yaml(*g);
  return 0;
}
