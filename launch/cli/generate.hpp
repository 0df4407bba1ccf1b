#pragma once
// `gfdit generate`: one picture (or several) from a model directory, no graph to write.
namespace gfdit::launch {
int generate_main(int argc, char** argv);
}
