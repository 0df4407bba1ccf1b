#pragma once
// IDX files (the MNIST family's format: a magic with the element type and rank, big-endian
// dimensions, then the elements), gzip'd as Debian's dataset packages ship them. Untrusted
// bytes: the inflated size is bounded before it is reached, and every dimension is checked
// against the bytes really present.
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "common/result.hpp"

namespace gfdit::dit {

struct idx_array {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;  // unsigned bytes (type 0x08), row-major
};

// gzip (or raw zlib) inflate that stops with an error past `max_bytes` of output.
result<std::vector<std::uint8_t>> gunzip(std::span<const std::uint8_t> in, std::size_t max_bytes);
// One IDX file of unsigned bytes, at most 4 dimensions.
result<idx_array> parse_idx(std::span<const std::uint8_t> raw);
// A .gz (or plain) IDX file; `max_bytes` bounds the file and its inflated size.
result<idx_array> read_idx(const std::filesystem::path& path, std::size_t max_bytes = std::size_t{256} << 20);

// Pictures with their labels: images [N][rows][cols], labels [N], each label < `classes`.
struct labelled_images {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
};
result<labelled_images> read_labelled_images(const std::filesystem::path& images, const std::filesystem::path& labels,
                                             int classes);

}  // namespace gfdit::dit
