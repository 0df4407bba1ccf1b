#pragma once
// `gfdit train`: trains a class-conditional DiT on the CPU, data parallel over worker processes,
// into a model folder `gfdit generate --weights DIR` draws from.
namespace gfdit::launch {
int train_main(int argc, char** argv);
}
