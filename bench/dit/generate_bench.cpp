// Pictures per second of a diffusers DiTPipeline folder on one GPU, end to end: the batch's
// requests (DDIM, CFG) through the transformer as one batch per step, the SD VAE decode and
// 8-bit pixels, beside the PyTorch peer run on the same folder in the same device call
// (bench/peers/peers_dit_generate.py, its JSON lines read from --peer).
//
//   gfdit_generate_bench --pipeline DIR [--batch 1 8] [--steps 25] [--reps 3] [--peer peer.jsonl]
//
// Times are wall clock from the initial noise to pixels in host memory, median of --reps runs
// after one warm-up run; the PNG encoding is left out on both sides.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "kernels/dit/generate.hpp"
#include "kernels/dit/gpu_forward.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/dit/sampler.hpp"
#include "kernels/dit/vae_gpu.hpp"

using namespace gfdit;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct peer_key {
  std::string peer;
  int resolution, batch;
  auto operator<=>(const peer_key&) const = default;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gfdit generate benchmark: pictures/s of a DiT pipeline on one GPU beside PyTorch"};
  std::string dir, peer_path;
  std::vector<int> batches{1, 8};
  int steps = 25, reps = 3;
  float guidance = 4.0f;
  app.add_option("--pipeline", dir, "diffusers DiTPipeline folder (models/reference/make_dit_pipeline.py)")->required();
  app.add_option("--batch", batches, "batch sizes");
  app.add_option("--steps", steps, "DDIM steps");
  app.add_option("--guidance", guidance, "CFG scale");
  app.add_option("--reps", reps, "timed runs (the median is reported)")->check(CLI::Range(1, 100));
  app.add_option("--peer", peer_path, "JSON lines from peers_dit_generate.py");
  CLI11_PARSE(app, argc, argv);

  auto card = dit::read_model_card(dir);
  if (!card) {
    std::fprintf(stderr, "%s\n", card.err().what.c_str());
    return 1;
  }
  if (card->vae_dir.empty()) {
    std::fprintf(stderr, "%s: no vae/ folder\n", dir.c_str());
    return 1;
  }
  auto m = dit::load_model(*card);
  if (!m) {
    std::fprintf(stderr, "%s\n", m.err().what.c_str());
    return 1;
  }
  auto vae = dit::vae_decoder::load(card->vae_dir);
  if (!vae) {
    std::fprintf(stderr, "%s\n", vae.err().what.c_str());
    return 1;
  }
  auto gm = dit::gpu_model::upload(*m);
  if (!gm) {
    std::fprintf(stderr, "%s\n", gm.err().what.c_str());
    return 1;
  }
  auto gv = dit::gpu_vae_decoder::upload(*vae);
  if (!gv) {
    std::fprintf(stderr, "%s\n", gv.err().what.c_str());
    return 1;
  }
  const dit::model_config& c = m->config();
  const int resolution = c.width * (1 << vae->config().upsamplers());

  std::map<peer_key, double> peer;  // images/s
  if (!peer_path.empty()) {
    std::ifstream f(peer_path);
    for (std::string line; std::getline(f, line);) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.contains("images_per_s") && j.value("steps", 0) == steps)
          peer[{j["peer"].get<std::string>(), j["resolution"].get<int>(), j["batch"].get<int>()}] =
              j["images_per_s"].get<double>();
      } catch (const std::exception&) {  // a peer's other output
      }
    }
  }

  std::printf("%s: %d blocks, hidden %d, %lld tokens, %d px; %d DDIM steps, CFG %.1f; VAE decode included\n",
              c.name.c_str(), c.depth, c.hidden, static_cast<long long>(c.image_tokens()), resolution, steps, guidance);
  std::printf("%6s %5s | %12s %10s | %13s %7s | %13s %7s\n", "px", "batch", "gfdit s/batch", "images/s", "torch eager",
              "ratio", "torch.compile", "ratio");
  for (int n : batches) {
    std::vector<dit::request> rs;
    for (int k = 0; k < n; ++k) {
      dit::generate_options o;
      o.class_label = k % c.num_classes;
      o.seed = static_cast<std::uint64_t>(k);
      o.steps = steps;
      o.guidance = guidance;
      rs.push_back(dit::make_request(*card, o));
    }
    auto forward = [&](const dit::forward_input& in, const dit::sp_group&) { return (*gm)->forward(in, 1); };
    std::vector<double> times;
    std::size_t bytes = 0;
    for (int rep = 0; rep <= reps; ++rep) {  // rep 0 warms up
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::vector<float>> lat;
      for (const auto& r : rs) lat.push_back(dit::initial_latent(c, r, 1, 0));
      if (auto s = dit::denoise_batch(forward, c, rs, 0, steps, lat); !s) {
        std::fprintf(stderr, "batch %d: %s\n", n, s.err().what.c_str());
        return 1;
      }
      std::vector<float> latents;
      for (const auto& l : lat) {
        auto u = dit::unpatchify(c, l);
        latents.insert(latents.end(), u.begin(), u.end());
      }
      auto img = dit::decode_pixels_gpu(*card, latents, n, **gv);
      if (!img) {
        std::fprintf(stderr, "batch %d: %s\n", n, img.err().what.c_str());
        return 1;
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      bytes = 0;
      for (const auto& i : *img) bytes += i.pixels.size();
      if (rep > 0) times.push_back(s);
    }
    const double med = median(times), ips = n / med;
    const auto ratio = [&](const char* p, double& other) {
      auto it = peer.find({p, resolution, n});
      other = it == peer.end() ? 0 : it->second;
      return other > 0 ? ips / other : 0.0;
    };
    double eager = 0, compiled = 0;
    const double re = ratio("pytorch-eager", eager), rc = ratio("pytorch-compile", compiled);
    std::printf("%6d %5d | %12.4f %10.3f | %13.3f %6.2fx | %13.3f %6.2fx\n", resolution, n, med, ips, eager, re,
                compiled, rc);
    nlohmann::json row = {{"bench", "generate"},
                          {"model", c.name},
                          {"resolution", resolution},
                          {"batch", n},
                          {"steps", steps},
                          {"s_per_batch", med},
                          {"images_per_s", ips},
                          {"pixel_bytes", bytes},
                          {"peer_eager_images_per_s", eager},
                          {"peer_compile_images_per_s", compiled}};
    std::fprintf(stderr, "%s\n", row.dump().c_str());
  }
  return 0;
}
