// gfdit-bag: the bag tools before (and beside) the gfdit CLI. `gfdit-bag replay ...` runs the
// replay tool.
#include <cstring>

#include "launch/cli/bag_main.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "replay") == 0) return gfdit::replay_main(argc - 1, argv + 1);
  return gfdit::bag_main(argc, argv);
}
