#pragma once
// safetensors files, read and written by the project's own bounded code: an 8-byte
// little-endian header length, a JSON header (per tensor: dtype, shape, data_offsets; optional
// __metadata__ of strings), then the data. Reading trusts nothing: the header length is capped,
// every shape and offset is checked against the bytes really present before anything is read,
// and errors name the tensor.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gfdit::dit {

struct st_tensor {
  std::string dtype;  // F32, F16, BF16 (values exact in float), I32, I64, U8 (as float)
  std::vector<std::int64_t> shape;
  std::vector<float> values;
};

struct st_file {
  std::map<std::string, std::string> metadata;
  std::map<std::string, st_tensor> tensors;
};

inline constexpr std::uint64_t st_max_header_bytes = 16u << 20;  // safetensors' own limit is 100 MB

result<st_file> read_safetensors(const std::filesystem::path& path);
// Writes every tensor in `dtype` (F32, F16 or BF16; values rounded to nearest even), in name order.
result<void> write_safetensors(const std::filesystem::path& path, const st_file& file, const std::string& dtype);

std::string shape_text(const std::vector<std::int64_t>& shape);  // "[3, 4]"

}  // namespace gfdit::dit
