#pragma once
// `gfdit sim` / `gfdit-sim`: run the serving simulator from the command line.
//   --workload W.yaml --policy P --gpus N [--seed S] [--faults F] [--compare a,b] [--sweep]
//   [--json out.json]
// Returns the process exit code (0: ran; 1: bad input; 2: an invariant broke).
namespace gfdit::sim {
int sim_main(int argc, char** argv);
}  // namespace gfdit::sim
