#pragma once
// The parameters of a training run, declared alike by the coordinator and every trainer (a
// launch file gives them once, under `parameters:`), and the run's options built from them.
#include "actors/runtime/context.hpp"
#include "kernels/train/run.hpp"

namespace gfdit::train_graph {

result<void> declare_run_params(context& ctx);
// The options of the run: the model folder, data, output folder and the recipe.
train::run_options run_options_of(context& ctx);
// The pool: trainer processes, one World.
int pool_of(context& ctx);
// The actor that trains rank `rank`, as the launch file names it.
std::string trainer_name(int rank);

}  // namespace gfdit::train_graph
