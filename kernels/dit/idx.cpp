#include "kernels/dit/idx.hpp"

#include <fstream>
#include <string>

#include <zlib.h>

namespace gfdit::dit {

result<std::vector<std::uint8_t>> gunzip(std::span<const std::uint8_t> in, std::size_t max_bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK)  // +32: gzip or zlib header, detected
    return make_error(errc::io, "gunzip: zlib would not start");
  std::vector<std::uint8_t> out;
  zs.next_in = const_cast<Bytef*>(in.data());  // zlib's API is not const-correct
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out.size() >= max_bytes) {
      inflateEnd(&zs);
      return make_error(errc::too_large, "gunzip: inflates past the limit of " + std::to_string(max_bytes) + " bytes");
    }
    const std::size_t chunk = std::min<std::size_t>(max_bytes - out.size(), std::size_t{1} << 20);
    const std::size_t before = out.size();
    out.resize(before + chunk);
    zs.next_out = out.data() + before;
    zs.avail_out = static_cast<uInt>(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(before + (chunk - zs.avail_out));
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      inflateEnd(&zs);
      return make_error(errc::decode_failed,
                        "gunzip: truncated stream (ends after " + std::to_string(in.size()) + " bytes)");
    }
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      const std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      return make_error(errc::decode_failed,
                        "gunzip: corrupt stream at input byte " + std::to_string(zs.total_in) + ": " + msg);
    }
  }
  inflateEnd(&zs);
  return out;
}

result<idx_array> parse_idx(std::span<const std::uint8_t> raw) {
  if (raw.size() < 4) return make_error(errc::decode_failed, "idx: shorter than its 4-byte magic");
  if (raw[0] != 0 || raw[1] != 0)
    return make_error(errc::decode_failed, "idx: the magic does not start with two zero bytes");
  if (raw[2] != 0x08)
    return make_error(errc::invalid_argument,
                      "idx: element type code " + std::to_string(raw[2]) + " (only unsigned bytes, code 8, are read)");
  const int rank = raw[3];
  if (rank < 1 || rank > 4)
    return make_error(errc::invalid_argument, "idx: rank " + std::to_string(rank) + " (1 to 4 are read)");
  const std::size_t head = 4 + 4 * static_cast<std::size_t>(rank);
  if (raw.size() < head) return make_error(errc::decode_failed, "idx: truncated in the dimensions");
  idx_array a;
  std::uint64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    const std::uint8_t* p = &raw[4 + 4 * d];
    const std::uint32_t v =
        (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
    a.dims.push_back(v);
    n *= v;
    if (n > raw.size()) break;  // keeps the product from overflowing; reported below
  }
  if (n != raw.size() - head)
    return make_error(errc::decode_failed, "idx: the dimensions claim " + std::to_string(n) +
                                               " elements, the file holds " + std::to_string(raw.size() - head));
  a.data.assign(raw.begin() + static_cast<std::ptrdiff_t>(head), raw.end());
  return a;
}

result<idx_array> read_idx(const std::filesystem::path& path, std::size_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return make_error(errc::not_found, "idx " + path.string() + ": " + ec.message());
  if (size > max_bytes) return make_error(errc::too_large, "idx " + path.string() + ": file over the limit");
  std::ifstream f(path, std::ios::binary);
  std::vector<std::uint8_t> bytes(size);
  if (!f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    return make_error(errc::io, "idx " + path.string() + ": read failed");
  const bool gz = size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
  result<idx_array> a = gz ? [&]() -> result<idx_array> {
    auto raw = gunzip(bytes, max_bytes);
    if (!raw) return raw.err();
    return parse_idx(*raw);
  }()
      : parse_idx(bytes);
  if (!a) return make_error(a.err().code, path.string() + ": " + a.err().what);
  return a;
}

result<labelled_images> read_labelled_images(const std::filesystem::path& images, const std::filesystem::path& labels,
                                             int classes) {
  auto im = read_idx(images);
  if (!im) return im.err();
  auto lb = read_idx(labels);
  if (!lb) return lb.err();
  if (im->dims.size() != 3)
    return make_error(errc::invalid_argument, images.string() + ": images must be [count][rows][cols]");
  if (lb->dims.size() != 1) return make_error(errc::invalid_argument, labels.string() + ": labels must be [count]");
  if (im->dims[0] != lb->dims[0])
    return make_error(errc::invalid_argument,
                      "idx: " + std::to_string(im->dims[0]) + " images but " + std::to_string(lb->dims[0]) + " labels");
  for (std::size_t i = 0; i < lb->data.size(); ++i)
    if (lb->data[i] >= classes)
      return make_error(errc::invalid_argument, labels.string() + ": label " + std::to_string(lb->data[i]) +
                                                    " of item " + std::to_string(i) + " is not below " +
                                                    std::to_string(classes));
  return labelled_images{static_cast<int>(im->dims[0]), static_cast<int>(im->dims[1]), static_cast<int>(im->dims[2]),
                         std::move(im->data), std::move(lb->data)};
}

}  // namespace gfdit::dit
