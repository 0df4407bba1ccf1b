// gfdit-sim: the standalone simulator (the `gfdit` CLI calls the same sim_main for `gfdit sim`).
#include "actors/sim/sim_main.hpp"

int main(int argc, char** argv) { return gfdit::sim::sim_main(argc, argv); }
