// gfdit generate --model fashion-dit --prompt "ankle boot" --seed 7 --out boot.png
//   --class N instead of --prompt; --steps, --guidance, --n (seeds seed .. seed+n-1, files
//   NAME-0.png ...), --grid (all of them in one picture), --scale K (nearest-neighbour
//   enlargement), --device cpu|gpu, --degree D (CPU Ulysses ranks as threads), --weights DIR.
#include "launch/cli/generate.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <unistd.h>
#include <CLI/CLI.hpp>

#include "common/text.hpp"
#include "kernels/dit/generate.hpp"
#include "kernels/dit/model_card.hpp"
#include "kernels/dit/png.hpp"
#include "kernels/dit/vae_gpu.hpp"
#include "launch/cli/self_exe.hpp"

namespace gfdit::launch {

namespace {

namespace fs = std::filesystem;

int fail(const std::string& what) {
  std::fprintf(stderr, "gfdit generate: %s\n", what.c_str());
  return 2;
}

fs::path numbered(const fs::path& out, int i) {
  return out.parent_path() / (out.stem().string() + "-" + std::to_string(i) + out.extension().string());
}

}  // namespace

int generate_main(int argc, char** argv) {
  CLI::App app{"gfdit generate: pictures from a model, no graph to write"};
  std::string model_name = "fashion-dit", weights, prompt, out = "out.png", device = "cpu";
  int cls = -1, steps = 0, n = 1, degree = 0, scale = 1, gpu = 0;
  float guidance = -1.0f;
  std::uint64_t seed = 0;
  bool grid = false, quiet = false, every_class = false;
  app.add_option("--model", model_name, "a model directory's name, looked up on the model search path");
  app.add_option("--weights", weights,
                 "a model directory instead of --model: gfdit's (config.json + model.safetensors) or a diffusers "
                 "DiTPipeline folder (model_index.json, transformer/, vae/, scheduler/)");
  auto* p = app.add_option("--prompt", prompt, "what to draw: one of the model's class names");
  auto* c = app.add_option("--class", cls, "the class number instead of a prompt")->check(CLI::NonNegativeNumber);
  p->excludes(c);
  app.add_option("--seed", seed, "the noise seed (image i of --n uses seed + i)");
  app.add_option("--steps", steps, "denoising steps (default: the model's)")->check(CLI::Range(1, 1000));
  app.add_option("--guidance", guidance, "classifier-free guidance scale (default: the model's; <= 1: none)")
      ->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--n", n, "how many pictures")->check(CLI::Range(1, 1024));
  app.add_option("--out", out, "the PNG file (with --n > 1 and no --grid: NAME-0.png, NAME-1.png, ...)");
  app.add_flag("--grid", grid,
               "one PNG with every picture: ten a row, or a row per class with --every-class (one row with --n 1)");
  app.add_flag("--every-class", every_class, "--n pictures of every class (files NAME-CLASS-I.png, or --grid)");
  app.add_option("--scale", scale, "enlarge each picture by this factor (nearest neighbour)")->check(CLI::Range(1, 64));
  app.add_option("--device", device, "cpu or gpu")->check(CLI::IsMember({"cpu", "gpu"}));
  app.add_option("--gpu", gpu, "which GPU with --device gpu")->check(CLI::NonNegativeNumber);
  app.add_option("--degree", degree,
                 "CPU: Ulysses degree (ranks as threads; must divide the heads; default: the largest that fits the "
                 "cores; every degree draws the same bytes)")
      ->check(CLI::Range(1, 64));
  app.add_flag("--quiet", quiet, "no progress lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  fs::path dir;
  if (!weights.empty()) {
    dir = weights;
  } else {
    auto found = dit::find_model(model_name, dit::model_search_path(self_exe()));
    if (!found) return fail(found.err().what);
    dir = *found;
  }
  auto card = dit::read_model_card(dir);
  if (!card) return fail(card.err().what);
  int label = cls;
  if (every_class) {
    if (!prompt.empty() || cls >= 0) return fail("--every-class draws every class: no --prompt or --class with it");
    if (card->config.cond != dit::conditioning::class_label)
      return fail("--every-class needs a class-conditional model");
    label = 0;
  } else if (!prompt.empty()) {
    auto m = dit::match_class(*card, prompt);
    if (!m) return fail(m.err().what);
    label = *m;
  } else if (label < 0) {
    return fail("say what to draw: --prompt NAME or --class N" +
                (card->class_names.empty() ? std::string() : " (classes: " + [&] {
                  std::string s;
                  for (std::size_t i = 0; i < card->class_names.size(); ++i)
                    s += (i ? ", " : "") + std::to_string(i) + " " + card->class_names[i];
                  return s;
                }() + ")"));
  }
  if (card->config.cond == dit::conditioning::class_label && label >= card->config.num_classes)
    return fail("--class " + std::to_string(label) + " is not below the model's " +
                std::to_string(card->config.num_classes) + " classes");

  const auto t0 = std::chrono::steady_clock::now();
  auto model = dit::load_model(*card);
  if (!model) return fail(model.err().what);
  std::optional<dit::vae_decoder> vae;
  if (!card->vae_dir.empty()) {
    auto v = dit::vae_decoder::load(card->vae_dir);
    if (!v) return fail(v.err().what);
    vae = std::move(*v);
  }
  std::unique_ptr<dit::gpu_vae_decoder> gpu_vae;  // --device gpu decodes there too
  if (vae && device == "gpu") {
    auto g = dit::gpu_vae_decoder::upload(*vae, gpu);
    if (!g) return fail(g.err().what);
    gpu_vae = std::move(*g);
  }
  if (degree == 0) {  // the most ranks the cores and the heads allow: the bytes are the same
    degree = 1;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (device == "cpu")
      for (int d = std::min(cores, card->config.heads); d > 1; --d)
        if (card->config.heads % d == 0) {
          degree = d;
          break;
        }
  }
  const bool tty = ::isatty(2);
  auto class_name = [&](int l) {
    return card->class_names.empty() ? "class " + std::to_string(l) : card->class_names[static_cast<std::size_t>(l)];
  };
  std::vector<int> labels{label};
  if (every_class) {
    labels.clear();
    for (int l = 0; l < card->config.num_classes; ++l) labels.push_back(l);
  }

  struct picture {
    int label;
    int index;
    dit::image8 img;
  };
  std::vector<picture> pictures;
  for (int l : labels)
    for (int i = 0; i < n; ++i) {
      dit::generate_options o;
      o.class_label = l;
      o.seed = seed + static_cast<std::uint64_t>(i);
      o.steps = steps;
      o.guidance = guidance;
      o.degree = degree;
      o.device = device == "gpu" ? dit::device_kind::gpu : dit::device_kind::cpu;
      o.gpu = gpu;
      const std::string what = class_name(l);
      if (!quiet)
        o.progress = [&](int done, int total) {
          if (!tty && done != total && done % std::max(1, total / 4) != 0) return;  // logs: a few lines
          std::fprintf(stderr, tty ? "\r%s (seed %llu): step %d/%d" : "%s (seed %llu): step %d/%d\n", what.c_str(),
                       static_cast<unsigned long long>(o.seed), done, total);
          if (tty && done == total) std::fputc('\n', stderr);
        };
      auto latent = dit::generate_latent(*model, *card, o);
      if (!latent) return fail(latent.err().what);
      dit::image8 picture;
      if (gpu_vae) {
        auto img = dit::decode_pixels_gpu(*card, *latent, 1, *gpu_vae);
        if (!img) return fail(img.err().what);
        picture = std::move(img->front());
      } else {
        auto img = dit::decode_pixels(*card, *latent, vae ? &*vae : nullptr);
        if (!img) return fail(img.err().what);
        picture = std::move(*img);
      }
      pictures.push_back({l, i, dit::upscale(picture, scale)});
    }

  std::vector<std::tuple<fs::path, const dit::image8*, std::string>> files;
  dit::image8 sheet;
  if (pictures.size() > 1 && grid) {
    std::vector<dit::image8> all;
    for (const auto& p : pictures) all.push_back(p.img);
    // A row per class; one picture of each: all classes in one row.
    const int cols = every_class ? (n == 1 ? static_cast<int>(labels.size()) : n) : std::min(n, 10);
    auto t = dit::tile(all, cols);
    if (!t) return fail(t.err().what);
    sheet = std::move(*t);
    files.emplace_back(out, &sheet, every_class ? "every class" : class_name(label));
  } else {
    const fs::path o(out);
    for (const auto& p : pictures) {
      fs::path path = o;
      if (every_class)
        path = o.parent_path() / (o.stem().string() + "-" + std::to_string(p.label) + "-" + std::to_string(p.index) +
                                  o.extension().string());
      else if (n > 1)
        path = numbered(o, p.index);
      files.emplace_back(path, &p.img, class_name(p.label));
    }
  }
  for (const auto& [path, img, what] : files) {
    auto png = dit::encode_png(*img);
    if (!png) return fail(png.err().what);
    if (auto w = write_text_atomically(path, std::string_view(reinterpret_cast<const char*>(png->data()), png->size()));
        !w)
      return fail(w.err().what);
    std::printf("%s: %dx%d %s, %zu bytes\n", path.string().c_str(), img->width, img->height, what.c_str(), png->size());
  }
  const int count = static_cast<int>(pictures.size());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!quiet) std::fprintf(stderr, "%d picture%s in %.1f s\n", count, count == 1 ? "" : "s", s);
  return 0;
}

}  // namespace gfdit::launch
