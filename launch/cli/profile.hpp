#pragma once
// `gfdit profile`: a served checkpoint's stage costs measured on this machine's workers, written
// as the cost profile the scheduler and `gfdit sim` read.
namespace gfdit::launch {
int profile_main(int argc, char** argv);
}
