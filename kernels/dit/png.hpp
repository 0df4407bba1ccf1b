#pragma once
// PNG files for decoded pictures, through Debian's libspng: 8-bit grey or RGB, encoded with a
// fixed compression level so the same pixels give the same bytes on every run.
#include <cstdint>
#include <span>
#include <vector>

#include "common/result.hpp"

namespace gfdit::dit {

struct image8 {
  int width = 0, height = 0, channels = 0;  // channels: 1 (grey) or 3 (RGB)
  std::vector<std::uint8_t> pixels;         // row-major, interleaved
};

// Nearest-neighbour enlargement by an integer factor (a 28x28 picture is hard to see).
image8 upscale(const image8& in, int factor);
// Pictures side by side in a grid of `cols` columns (all of one size and channel count).
result<image8> tile(std::span<const image8> pictures, int cols);

result<std::vector<std::uint8_t>> encode_png(const image8& img);
// Decodes an 8-bit grey or RGB PNG; refuses anything over `max_pixels` before allocating.
result<image8> decode_png(std::span<const std::uint8_t> bytes, std::int64_t max_pixels = 64 << 20);

}  // namespace gfdit::dit
