// One rank of a data-parallel training run, as a real process (run_ranks starts N of them):
//   gfdit_train_worker train RANK N WORLD_DIR MODEL_DIR OUT STEPS BATCH STOP_AT RESUME(0|1)
// Exit 0 when the run finished, 1 with the error on stderr otherwise. OUT/members, when there,
// changes who takes each step; rank 0 writes its notes (membership changes, a members file
// refused) to OUT.notes.
#include <cstdio>
#include <string>

#include "kernels/train/run.hpp"
#include "tests/kernels/train/train_support.hpp"

int main(int argc, char** argv) {
  if (argc != 11 || std::string(argv[1]) != "train") {
    std::fprintf(stderr, "usage: %s train RANK N WORLD_DIR MODEL_DIR OUT STEPS BATCH STOP_AT RESUME\n", argv[0]);
    return 2;
  }
  using namespace gfdit::train;
  const int rank = std::stoi(argv[2]), n = std::stoi(argv[3]);
  run_options o;
  o.model_dir = argv[5];
  o.out = argv[6];
  o.images = std::string(testing::fashion_dir) + "/train-images-idx3-ubyte.gz";
  o.labels = std::string(testing::fashion_dir) + "/train-labels-idx1-ubyte.gz";
  o.data_limit = 512;
  o.train.steps = std::stoll(argv[7]);
  o.train.batch = std::stoi(argv[8]);
  o.train.seed = 11, o.train.init_seed = 5;
  o.train.adamw.lr = 2e-3f, o.train.adamw.warmup = 2;
  o.stop_at = std::stoll(argv[9]);
  o.resume = std::string(argv[10]) == "1";
  o.members_file = o.out / "members";
  const std::string out = argv[6];
  auto append = [](const std::string& file, const std::string& line) {
    if (FILE* f = std::fopen(file.c_str(), "a")) {
      std::fprintf(f, "%s\n", line.c_str());
      std::fclose(f);
    }
  };
  auto r = run_worker(o, rank, n, argv[4], nullptr, [&](const std::string& note) { append(out + ".notes", note); });
  if (!r) {
    std::fprintf(stderr, "rank %d: %s\n", rank, r.err().what.c_str());
    return 1;
  }
  return 0;
}
