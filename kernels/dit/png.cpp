#include "kernels/dit/png.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include <spng.h>

namespace gfdit::dit {

namespace {

using ctx_ptr = std::unique_ptr<spng_ctx, decltype(&spng_ctx_free)>;

error spng_error(const char* what, int rc) {
  return error{errc::decode_failed, std::string("png: ") + what + ": " + spng_strerror(rc)};
}

}  // namespace

image8 upscale(const image8& in, int factor) {
  if (factor <= 1) return in;
  image8 out{in.width * factor, in.height * factor, in.channels, {}};
  out.pixels.resize(static_cast<std::size_t>(out.width) * out.height * out.channels);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int c = 0; c < in.channels; ++c)
        out.pixels[(static_cast<std::size_t>(y) * out.width + x) * in.channels + c] =
            in.pixels[(static_cast<std::size_t>(y / factor) * in.width + x / factor) * in.channels + c];
  return out;
}

result<image8> tile(std::span<const image8> pictures, int cols) {
  if (pictures.empty() || cols < 1) return make_error(errc::invalid_argument, "png tile: no pictures or no columns");
  const image8& first = pictures.front();
  for (const auto& p : pictures)
    if (p.width != first.width || p.height != first.height || p.channels != first.channels)
      return make_error(errc::invalid_argument, "png tile: pictures differ in size or channels");
  const int rows =
      static_cast<int>((pictures.size() + static_cast<std::size_t>(cols) - 1) / static_cast<std::size_t>(cols));
  image8 out{first.width * cols, first.height * rows, first.channels, {}};
  out.pixels.assign(static_cast<std::size_t>(out.width) * out.height * out.channels, 0);
  const std::size_t row_bytes = static_cast<std::size_t>(first.width) * first.channels;
  for (std::size_t i = 0; i < pictures.size(); ++i) {
    const int ox = static_cast<int>(i % static_cast<std::size_t>(cols)) * first.width;
    const int oy = static_cast<int>(i / static_cast<std::size_t>(cols)) * first.height;
    for (int y = 0; y < first.height; ++y)
      std::copy_n(&pictures[i].pixels[y * row_bytes], row_bytes,
                  &out.pixels[(static_cast<std::size_t>(oy + y) * out.width + ox) * first.channels]);
  }
  return out;
}

result<std::vector<std::uint8_t>> encode_png(const image8& img) {
  if (img.width < 1 || img.height < 1 || (img.channels != 1 && img.channels != 3))
    return make_error(errc::invalid_argument, "png: need a positive size and 1 or 3 channels");
  if (img.pixels.size() != static_cast<std::size_t>(img.width) * img.height * img.channels)
    return make_error(errc::invalid_argument, "png: pixel buffer does not match the size");
  ctx_ptr ctx(spng_ctx_new(SPNG_CTX_ENCODER), spng_ctx_free);
  if (!ctx) return make_error(errc::io, "png: cannot create an encoder");
  if (int rc = spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1)) return spng_error("buffer", rc);
  if (int rc = spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, 6)) return spng_error("level", rc);
  spng_ihdr ihdr{};
  ihdr.width = static_cast<std::uint32_t>(img.width);
  ihdr.height = static_cast<std::uint32_t>(img.height);
  ihdr.bit_depth = 8;
  ihdr.color_type = img.channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR;
  if (int rc = spng_set_ihdr(ctx.get(), &ihdr)) return spng_error("header", rc);
  if (int rc = spng_encode_image(ctx.get(), img.pixels.data(), img.pixels.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE))
    return spng_error("encode", rc);
  std::size_t len = 0;
  int rc = 0;
  void* buf = spng_get_png_buffer(ctx.get(), &len, &rc);
  if (!buf) return spng_error("buffer", rc);
  std::vector<std::uint8_t> out(static_cast<const std::uint8_t*>(buf), static_cast<const std::uint8_t*>(buf) + len);
  std::free(buf);  // spng hands the buffer over, allocated with malloc
  return out;
}

result<image8> decode_png(std::span<const std::uint8_t> bytes, std::int64_t max_pixels) {
  ctx_ptr ctx(spng_ctx_new(0), spng_ctx_free);
  if (!ctx) return make_error(errc::io, "png: cannot create a decoder");
  spng_set_crc_action(ctx.get(), SPNG_CRC_ERROR, SPNG_CRC_ERROR);
  if (int rc = spng_set_chunk_limits(ctx.get(), 1u << 26, 1u << 26)) return spng_error("limits", rc);
  if (int rc = spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size())) return spng_error("buffer", rc);
  spng_ihdr ihdr{};
  if (int rc = spng_get_ihdr(ctx.get(), &ihdr)) return spng_error("header", rc);
  if (static_cast<std::int64_t>(ihdr.width) * ihdr.height > max_pixels)
    return make_error(errc::too_large, "png: " + std::to_string(ihdr.width) + "x" + std::to_string(ihdr.height) +
                                           " is over the limit of " + std::to_string(max_pixels) + " pixels");
  if (ihdr.bit_depth != 8 ||
      (ihdr.color_type != SPNG_COLOR_TYPE_GRAYSCALE && ihdr.color_type != SPNG_COLOR_TYPE_TRUECOLOR))
    return make_error(errc::invalid_argument, "png: only 8-bit grey or RGB pictures are read");
  image8 img{static_cast<int>(ihdr.width),
             static_cast<int>(ihdr.height),
             ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ? 1 : 3,
             {}};
  const int fmt = img.channels == 1 ? SPNG_FMT_G8 : SPNG_FMT_RGB8;
  std::size_t len = 0;
  if (int rc = spng_decoded_image_size(ctx.get(), fmt, &len)) return spng_error("size", rc);
  img.pixels.resize(len);
  if (int rc = spng_decode_image(ctx.get(), img.pixels.data(), len, fmt, 0)) return spng_error("decode", rc);
  return img;
}

}  // namespace gfdit::dit
