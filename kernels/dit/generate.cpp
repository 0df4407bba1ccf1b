#include "kernels/dit/generate.hpp"

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>

#include "kernels/collectives/file_rendezvous.hpp"
#include "kernels/collectives/world.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/sampler.hpp"

namespace gfdit::dit {

request make_request(const model_card& card, const generate_options& o) {
  request r;
  r.seed = o.seed;
  r.steps = o.steps > 0 ? o.steps : card.default_steps;
  r.sampler = card.sampler;
  r.guidance = o.guidance >= 0.0f ? o.guidance : card.default_guidance;
  r.shift = card.shift;
  r.class_label = o.class_label;
  return r;
}

namespace {

// Steps one at a time, so progress can be shown; chunked steps give the same bits as one run.
template <class Step>
result<void> run_steps(const request& r, bool report, const generate_options& o, Step&& step) {
  for (int i = 0; i < r.steps; ++i) {
    if (auto s = step(i, i + 1); !s) return s;
    if (report && o.progress) o.progress(i + 1, r.steps);
  }
  return {};
}

// Ulysses on the CPU: each rank a thread with its own World handle over shared memory.
result<std::vector<float>> generate_parallel(const model& m, const request& r, const generate_options& o) {
  const model_config& c = m.config();
  const int n = o.degree;
  static std::atomic<int> serial{0};
  const auto dir = std::filesystem::temp_directory_path() /
                   ("gfdit-generate-" + std::to_string(::getpid()) + "-" + std::to_string(serial++));
  std::vector<result<std::vector<float>>> out(static_cast<std::size_t>(n), std::vector<float>{});
  {
    std::vector<std::jthread> ranks;
    for (int rank = 0; rank < n; ++rank)
      ranks.emplace_back([&, rank] {
        auto& mine = out[static_cast<std::size_t>(rank)];
        coll::file_rendezvous rv(dir, rank, n);
        coll::world_options wo;
        wo.backend = coll::backend_kind::host;
        wo.buffer_bytes = std::size_t{4} << 20;
        wo.timeout = std::chrono::milliseconds(120000);
        auto world = coll::World::create(rv, wo);
        if (!world) return void(mine = world.err());
        std::vector<std::int32_t> members(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) members[static_cast<std::size_t>(i)] = i;
        auto g = (*world)->form(members, 1);
        if (!g) return void(mine = g.err());
        const sp_group sp{world->get(), *g};
        std::vector<float> shard = initial_latent(c, r, n, rank);
        if (auto s = run_steps(r, rank == 0, o, [&](int b, int e) { return denoise(m, r, b, e, sp, shard); }); !s)
          return void(mine = s.err());
        const std::int32_t zero[] = {0};
        auto to0 = (*world)->form(zero, 2);
        if (!to0) return void(mine = to0.err());
        auto full = reshard(**world, *g, *to0, c, shard);
        if (!full) return void(mine = full.err());
        mine = std::move(*full);
      });
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  for (auto& x : out)
    if (!x) return x.err();
  return std::move(*out[0]);
}

}  // namespace

result<std::vector<float>> generate_latent(const model& m, const model_card& card, const generate_options& o) {
  const model_config& c = m.config();
  const request r = make_request(card, o);
  if (auto v = validate(c, r); !v) return v.err();
  if (o.degree < 1 || c.heads % o.degree != 0)
    return make_error(errc::invalid_argument, "degree " + std::to_string(o.degree) + " does not divide the model's " +
                                                  std::to_string(c.heads) + " heads");
  std::vector<float> tokens;
  if (o.device == device_kind::gpu) {
    if (o.degree != 1)
      return make_error(errc::invalid_argument, "on the GPU, generate runs at degree 1 (serve for more)");
    auto gm = gpu_model::upload(m, o.gpu);
    if (!gm) return gm.err();
    tokens = initial_latent(c, r, 1, 0);
    if (auto s = run_steps(r, true, o, [&](int b, int e) { return (*gm)->denoise(r, b, e, sp_group{}, tokens); }); !s)
      return s.err();
  } else if (o.degree == 1) {
    tokens = initial_latent(c, r, 1, 0);
    if (auto s = run_steps(r, true, o, [&](int b, int e) { return denoise(m, r, b, e, sp_group{}, tokens); }); !s)
      return s.err();
  } else {
    auto t = generate_parallel(m, r, o);
    if (!t) return t.err();
    tokens = std::move(*t);
  }
  return unpatchify(c, tokens);
}

namespace {

// Decoded values [channels][height][width] -> 8-bit pixels: clamped to the card's range (NaN to
// its low end), scaled and rounded.
result<image8> to_pixels(const model_card& card, std::span<const float> px, int channels, int height, int width) {
  if (channels != 1 && channels != 3)
    return make_error(errc::invalid_argument, "decode: pictures have 1 or 3 channels");
  const std::size_t hw = static_cast<std::size_t>(height) * width;
  image8 img{width, height, channels, std::vector<std::uint8_t>(px.size())};
  const float lo = card.pixel_lo, span = card.pixel_hi - card.pixel_lo;
  for (std::size_t p = 0; p < hw; ++p)
    for (int ch = 0; ch < channels; ++ch) {
      float x = px[ch * hw + p];
      x = std::isnan(x) ? lo : std::min(std::max(x, lo), card.pixel_hi);
      img.pixels[p * channels + ch] = static_cast<std::uint8_t>(std::lround((x - lo) / span * 255.0f));
    }
  return img;
}

result<void> check_latents(const model_config& c, std::size_t values, int batch) {
  if (c.frames != 1) return make_error(errc::invalid_argument, "decode: video latents are not decoded to PNG");
  const std::size_t latent_size = static_cast<std::size_t>(c.latent_channels) * c.height * c.width;
  if (batch < 1 || values != latent_size * static_cast<std::size_t>(batch))
    return make_error(errc::invalid_argument, "decode: latent of the wrong size");
  return {};
}

}  // namespace

result<image8> decode_pixels(const model_card& card, const std::vector<float>& latent, const vae_decoder* vae) {
  const model_config& c = card.config;
  if (auto r = check_latents(c, latent.size(), 1); !r) return r.err();
  std::vector<float> px;
  int channels = c.latent_channels, height = c.height, width = c.width;
  if (vae) {
    auto img = vae->decode(latent, c.height, c.width);
    if (!img) return img.err();
    px = std::move(*img);
    channels = vae->config().out_channels;
    const int s = 1 << vae->config().upsamplers();
    height *= s;
    width *= s;
  } else if (!card.vae_dir.empty() || (c.latent_channels != 1 && c.latent_channels != 3)) {
    return make_error(errc::invalid_argument,
                      "decode: model " + c.name + " has a " + std::to_string(c.latent_channels) +
                          "-channel latent and needs its VAE decoder" +
                          (card.vae_dir.empty() ? ", which its folder does not hold" : " loaded"));
  } else {
    px = latent;
  }
  return to_pixels(card, px, channels, height, width);
}

result<std::vector<image8>> decode_pixels_gpu(const model_card& card, const std::vector<float>& latents, int batch,
                                              gpu_vae_decoder& vae) {
  const model_config& c = card.config;
  if (auto r = check_latents(c, latents.size(), batch); !r) return r.err();
  auto px = vae.decode(latents, batch, c.height, c.width);
  if (!px) return px.err();
  const int s = 1 << vae.config().upsamplers(), channels = vae.config().out_channels;
  const std::size_t per = px->size() / static_cast<std::size_t>(batch);
  std::vector<image8> out;
  for (int b = 0; b < batch; ++b) {
    auto img = to_pixels(card, std::span<const float>(*px).subspan(b * per, per), channels, c.height * s, c.width * s);
    if (!img) return img.err();
    out.push_back(std::move(*img));
  }
  return out;
}

}  // namespace gfdit::dit
