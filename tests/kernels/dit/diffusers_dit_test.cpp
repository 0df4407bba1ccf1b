// diffusers' DiT checkpoints (DiTTransformer2DModel): the config of the published DiT-XL/2
// models, the tiny fixture's forward against the PyTorch reference written from diffusers'
// architecture (models/reference/diffusers_dit.py), every float dtype, and hostile folders.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "kernels/dit/diffusers_dit.hpp"
#include "kernels/dit/forward.hpp"
#include "kernels/dit/numerics.hpp"
#include "kernels/dit/safetensors.hpp"
#include "kernels/dit/sampler.hpp"
#include "tests/kernels/dit/diffusers_io.hpp"
#include "tests/kernels/dit/rel_rms.hpp"

namespace fs = std::filesystem;
using namespace gfdit;
using namespace gfdit::dit;
using gfdit::dit::testing::eps_of;
using gfdit::dit::testing::first_channels;
using gfdit::dit::testing::rel_rms;

namespace {

const fs::path source_dir = GFDIT_SOURCE_DIR;
const fs::path fixture = source_dir / "tests/kernels/dit/fixtures/tiny-diffusers-dit/transformer";
const char* const weights_name = "diffusion_pytorch_model.safetensors";

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("gfdit-diffusers-" + std::to_string(::getpid())) / name;
  fs::create_directories(d);
  return d;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::trunc) << s; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// A transformer/ folder holding `file` (written as `dtype`) and `config` text.
fs::path write_folder(const std::string& name, const st_file& file, const std::string& config,
                      const std::string& dtype = "F32") {
  const fs::path d = temp_dir(name);
  EXPECT_TRUE(write_safetensors(d / weights_name, file, dtype).ok());
  write_text(d / "config.json", config);
  return d;
}

// The published DiT-XL/2 transformer configs (facebook/DiT-XL-2-256 and -512 on the Hub still
// carry the legacy class name; diffusers remaps it to DiTTransformer2DModel).
std::string dit_xl_2_config(int sample_size, const std::string& cls = "Transformer2DModel") {
  return R"({
  "_class_name": ")" +
         cls + R"(",
  "_diffusers_version": "0.12.0.dev0",
  "activation_fn": "gelu-approximate",
  "attention_bias": true,
  "attention_head_dim": 72,
  "cross_attention_dim": null,
  "dropout": 0.0,
  "in_channels": 4,
  "norm_elementwise_affine": false,
  "norm_num_groups": 32,
  "norm_type": "ada_norm_zero",
  "num_attention_heads": 16,
  "num_embeds_ada_norm": 1000,
  "num_layers": 28,
  "num_vector_embeds": null,
  "only_cross_attention": false,
  "out_channels": 8,
  "patch_size": 2,
  "sample_size": )" +
         std::to_string(sample_size) + R"(,
  "upcast_attention": false,
  "use_linear_projection": false
})";
}

result<model_config> parse(const std::string& name, const std::string& text, int override_size = 0) {
  const fs::path p = temp_dir(name) / "config.json";
  write_text(p, text);
  return config_from_diffusers(p, override_size);
}

// The folder with one change to the weights or the config must be refused naming `expect`.
void expect_refused(const std::string& name, const std::function<void(st_file&, std::string&)>& change,
                    const std::string& expect) {
  auto file = read_safetensors(fixture / weights_name);
  ASSERT_TRUE(file.ok()) << file.err().what;
  std::string config = read_text(fixture / "config.json");
  change(*file, config);
  auto m = load_diffusers_dit(write_folder(name, *file, config));
  ASSERT_FALSE(m.ok()) << name << " loaded";
  EXPECT_NE(m.err().what.find(expect), std::string::npos) << name << ": " << m.err().what;
}

}  // namespace

// --- configs ----------------------------------------------------------------------------------

TEST(DiffusersDit, PublishedXl2ConfigsGiveTheStockSizes) {
  for (const auto& [sample, stock] : {std::pair{32, "dit-xl-2-256"}, std::pair{64, "dit-xl-2-512"}})
    for (const std::string cls : {"Transformer2DModel", "DiTTransformer2DModel"}) {
      auto c = parse("xl-" + std::to_string(sample) + cls, dit_xl_2_config(sample, cls));
      ASSERT_TRUE(c.ok()) << c.err().what;
      const auto s = *stock_config(stock);
      EXPECT_EQ(c->hidden, s.hidden);
      EXPECT_EQ(c->depth, s.depth);
      EXPECT_EQ(c->heads, s.heads);
      EXPECT_EQ(c->mlp_ratio, s.mlp_ratio);
      EXPECT_EQ(c->latent_channels, s.latent_channels);
      EXPECT_EQ(c->patch_dim(), s.patch_dim());
      EXPECT_EQ(c->num_classes, s.num_classes);
      EXPECT_EQ(c->height, s.height);
      EXPECT_EQ(c->width, s.width);
      EXPECT_EQ(c->image_tokens(), s.image_tokens());
      EXPECT_EQ(c->cond, conditioning::class_label);
      EXPECT_EQ(c->pos, positional::sincos);
      EXPECT_EQ(parameter_count(*c), parameter_count(s));  // same tensors, same shapes
      EXPECT_EQ(c->freq_shift, 1);                         // diffusers' Timesteps, not DiT's code
      EXPECT_EQ(s.freq_shift, 0);
      EXPECT_EQ(c->name, std::string("diffusers-") + stock);
    }
  // The 512 model at the 256 latent (gfdit keeps integer positions; see the header).
  auto small = parse("xl-512-at-32", dit_xl_2_config(64), 32);
  ASSERT_TRUE(small.ok()) << small.err().what;
  EXPECT_EQ(small->height, 32);
  EXPECT_EQ(small->image_tokens(), 256);
}

TEST(DiffusersDit, SmallerDitSizesAndDefaults) {
  // DiT-S/2, B/4, L/8 at 256 with only the size fields: the rest takes DiTTransformer2DModel's defaults.
  const struct {
    int heads, dim, layers, patch;
    const char* name;
  } sizes[] = {{6, 64, 12, 2, "diffusers-dit-s-2-256"},
               {12, 64, 12, 4, "diffusers-dit-b-4-256"},
               {16, 64, 24, 8, "diffusers-dit-l-8-256"}};
  for (const auto& s : sizes) {
    auto c = parse(s.name, "{\"num_attention_heads\": " + std::to_string(s.heads) + ", \"attention_head_dim\": " +
                               std::to_string(s.dim) + ", \"num_layers\": " + std::to_string(s.layers) +
                               ", \"patch_size\": " + std::to_string(s.patch) + ", \"out_channels\": 8}");
    ASSERT_TRUE(c.ok()) << c.err().what;
    EXPECT_EQ(c->name, s.name);
    EXPECT_EQ(c->hidden, s.heads * s.dim);
    EXPECT_EQ(c->num_classes, 1000);
    EXPECT_EQ(c->height, 32);
    EXPECT_EQ(c->patch_h, s.patch);
  }
}

TEST(DiffusersDit, ConfigsGfditCannotRunAreRefusedByField) {
  const std::string xl = dit_xl_2_config(32);
  const std::pair<std::string, std::string> cases[] = {
      {replaced(xl, "\"ada_norm_zero\"", "\"layer_norm\""), "norm_type 'layer_norm'"},
      {replaced(xl, "\"ada_norm_zero\"", "\"ada_norm_single\""), "norm_type 'ada_norm_single'"},
      {replaced(xl, "\"gelu-approximate\"", "\"geglu\""), "activation_fn 'geglu'"},
      {replaced(xl, "\"norm_elementwise_affine\": false", "\"norm_elementwise_affine\": true"),
       "norm_elementwise_affine"},
      {replaced(xl, "\"attention_bias\": true", "\"attention_bias\": false"), "attention_bias"},
      {replaced(xl, "\"out_channels\": 8", "\"out_channels\": 6"), "out_channels 6"},
      {replaced(xl, "\"num_embeds_ada_norm\": 1000", "\"num_embeds_ada_norm\": null"), "num_embeds_ada_norm"},
      {replaced(xl, "\"patch_size\": 2", "\"patch_size\": 3"), "sample_size 32 is not a multiple of patch_size 3"},
      {replaced(xl, "\"num_layers\": 28", "\"num_layers\": \"28\""), "num_layers has the wrong JSON type"},
      {replaced(xl, "\"num_layers\": 28", "\"num_layers\": 0"), "num_layers must be a positive integer"},
      {replaced(xl, "\"attention_head_dim\": 72", "\"attention_head_dim\": 1.5"),
       "attention_head_dim must be a positive integer"},
      {replaced(xl, "\"Transformer2DModel\"", "\"UNet2DConditionModel\""), "_class_name 'UNet2DConditionModel'"},
      {replaced(xl, "\"dropout\": 0.0", "\"norm_eps\": 0.01"), "norm_eps"},
      {"[1, 2]", "not a JSON object"},
      {"{\"num_layers\": ", "diffusers dit config"},
  };
  int i = 0;
  for (const auto& [text, expect] : cases) {
    auto c = parse("bad-config-" + std::to_string(i++), text);
    ASSERT_FALSE(c.ok()) << expect;
    EXPECT_NE(c.err().what.find(expect), std::string::npos) << c.err().what;
  }
  auto missing = config_from_diffusers(temp_dir("none") / "config.json");
  EXPECT_FALSE(missing.ok());
}

// --- the fixture --------------------------------------------------------------------------------

TEST(DiffusersDit, FixtureLoadsIntoGfditNames) {
  auto m = load_diffusers_dit(fixture);
  ASSERT_TRUE(m.ok()) << m.err().what;
  const model_config& c = m->config();
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.heads, 2);
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_EQ(c.num_classes, 10);
  EXPECT_EQ(c.image_tokens(), 16);
  EXPECT_EQ(c.freq_shift, 1);
  EXPECT_EQ(m->tensors().size(), weight_specs(c).size());
  EXPECT_EQ(m->tensors().at("final.linear.weight").size(), static_cast<std::size_t>(c.patch_dim()) * c.hidden);
  // The conditioning survives gfdit's own file format (freq_shift in the stored config).
  const fs::path saved = temp_dir("saved") / "model.safetensors";
  ASSERT_TRUE(m->save(saved).ok());
  auto back = model::load(saved);
  ASSERT_TRUE(back.ok()) << back.err().what;
  EXPECT_EQ(back->config().freq_shift, 1);
  EXPECT_EQ(to_json(back->config()), to_json(c));
  EXPECT_EQ(back->tensors(), m->tensors());
}

TEST(DiffusersDit, ForwardMatchesTheDiffusersReference) {
  auto m = load_diffusers_dit(fixture);
  ASSERT_TRUE(m.ok()) << m.err().what;
  auto io = read_safetensors(fixture / "reference_io.safetensors");
  ASSERT_TRUE(io.ok()) << io.err().what;
  const int C = m->config().latent_channels;
  EXPECT_EQ(io->tensors.at("out_fp32").shape, (std::vector<std::int64_t>{2, 8, 8, 8}));
  EXPECT_EQ(io->tensors.at("labels").values[1], 10.0f);  // one sample is the null class
  const auto eps = eps_of(*m, *io);
  ASSERT_EQ(eps.size(), first_channels(io->tensors.at("out_fp32"), C).size());
  const double fp32 = rel_rms(eps, first_channels(io->tensors.at("out_fp32"), C));
  const double f64 = rel_rms(eps, first_channels(io->tensors.at("out_f64"), C));
  const double emulated = rel_rms(eps, first_channels(io->tensors.at("out_gfdit_rounding"), C));
  RecordProperty("rel_rms_vs_fp32", std::to_string(fp32));
  RecordProperty("rel_rms_vs_f64", std::to_string(f64));
  RecordProperty("rel_rms_vs_gfdit_rounding", std::to_string(emulated));
  std::printf("epsilon rel RMS: vs fp32 %.3g, vs f64 %.3g, vs bf16-rounding emulation %.3g\n", fp32, f64, emulated);
  EXPECT_LE(fp32, 1e-2) << "bf16 weights and activations against fp32";
  EXPECT_LE(f64, 1e-2);
  EXPECT_LE(emulated, 1e-3) << "the emulation rounds where gfdit rounds: only summation order differs";

  // Without freq_shift (gfdit's DiT features) the same weights are visibly off: the field matters.
  std::map<std::string, std::vector<float>> named;
  for (const auto& [name, t] : m->tensors()) {
    std::vector<float> f(t.size());
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = from_bf16(t[i]);
    named.emplace(name, std::move(f));
  }
  model_config plain = m->config();
  plain.freq_shift = 0;
  auto unshifted = model::from_named(plain, std::move(named));
  ASSERT_TRUE(unshifted.ok()) << unshifted.err().what;
  EXPECT_GT(rel_rms(eps_of(*unshifted, *io), first_channels(io->tensors.at("out_fp32"), C)), 5e-2);
}

TEST(DiffusersDit, F16AndBf16FilesLoad) {
  auto file = read_safetensors(fixture / weights_name);
  ASSERT_TRUE(file.ok()) << file.err().what;
  const std::string config = read_text(fixture / "config.json");
  auto f32 = load_diffusers_dit(fixture);
  ASSERT_TRUE(f32.ok());
  auto io = read_safetensors(fixture / "reference_io.safetensors");
  ASSERT_TRUE(io.ok());
  const auto ref = first_channels(io->tensors.at("out_f64"), 4);
  for (const std::string dtype : {"BF16", "F16"}) {
    auto m = load_diffusers_dit(write_folder("dtype-" + dtype, *file, config, dtype));
    ASSERT_TRUE(m.ok()) << dtype << ": " << m.err().what;
    if (dtype == "BF16") {
      EXPECT_EQ(m->tensors(), f32->tensors()) << "rounding to bf16 once or twice is the same";
    }
    const double r = rel_rms(eps_of(*m, *io), ref);
    RecordProperty("rel_rms_" + dtype + "_vs_f64", std::to_string(r));
    EXPECT_LE(r, 1e-2) << dtype;
  }
}

TEST(DiffusersDit, WithoutLearnedSigmaTheSameEpsilonRowsLoad) {
  // out_channels == in_channels: proj_out_2 holds only the epsilon rows, (dy, dx, channel) order.
  auto file = read_safetensors(fixture / weights_name);
  ASSERT_TRUE(file.ok());
  auto& w = file->tensors.at("proj_out_2.weight");
  auto& b = file->tensors.at("proj_out_2.bias");
  const std::int64_t H = w.shape[1], C = 4, OC = 8;
  st_tensor w4{w.dtype, {4 * C, H}, {}}, b4{b.dtype, {4 * C}, {}};
  for (std::int64_t pos = 0; pos < 4; ++pos)
    for (std::int64_t ch = 0; ch < C; ++ch) {
      const std::int64_t row = pos * OC + ch;
      w4.values.insert(w4.values.end(), w.values.begin() + row * H, w.values.begin() + (row + 1) * H);
      b4.values.push_back(b.values[row]);
    }
  w = w4;
  b = b4;
  auto m = load_diffusers_dit(write_folder(
      "eps-only", *file, replaced(read_text(fixture / "config.json"), "\"out_channels\": 8", "\"out_channels\": 4")));
  ASSERT_TRUE(m.ok()) << m.err().what;
  auto sigma = load_diffusers_dit(fixture);
  ASSERT_TRUE(sigma.ok());
  EXPECT_EQ(m->tensors(), sigma->tensors());
}

// --- hostile folders ------------------------------------------------------------------------------

TEST(DiffusersDit, HostileFoldersAreRefusedByName) {
  expect_refused(
      "missing", [](st_file& f, std::string&) { f.tensors.erase("transformer_blocks.1.attn1.to_k.bias"); },
      "missing tensor transformer_blocks.1.attn1.to_k.bias");
  expect_refused(
      "extra",
      [](st_file& f, std::string&) {
        f.tensors["transformer_blocks.0.norm2.weight"] = {"F32", {64}, std::vector<float>(64, 1.0f)};
      },
      "unexpected tensor transformer_blocks.0.norm2.weight");
  expect_refused(
      "pos-buffer",
      [](st_file& f, std::string&) {
        f.tensors["pos_embed.pos_embed"] = {"F32", {1, 16, 64}, std::vector<float>(16 * 64)};
      },
      "unexpected tensor pos_embed.pos_embed");
  expect_refused(
      "shape",
      [](st_file& f, std::string&) {
        auto& t = f.tensors.at("transformer_blocks.0.ff.net.2.weight");
        t.shape = {64, 128};
        t.values.resize(64 * 128);
      },
      "transformer_blocks.0.ff.net.2.weight: wrong shape [64, 128] (expected [64, 256])");
  expect_refused(
      "no-null-class",
      [](st_file& f, std::string&) {
        for (int i = 0; i < 2; ++i) {
          auto& t = f.tensors.at("transformer_blocks." + std::to_string(i) +
                                 ".norm1.emb.class_embedder.embedding_table.weight");
          t.shape = {10, 64};
          t.values.resize(10 * 64);
        }
      },
      "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight: wrong shape [10, 64] (expected [11, 64])");
  expect_refused(
      "nan",
      [](st_file& f, std::string&) {
        f.tensors.at("transformer_blocks.1.norm1.linear.weight").values[5] = std::nanf("");
      },
      "transformer_blocks.1.norm1.linear.weight: element 5 is not finite");
  expect_refused(
      "inf", [](st_file& f, std::string&) { f.tensors.at("proj_out_2.bias").values[0] = INFINITY; },
      "proj_out_2.bias: element 0 is not finite");
  expect_refused(
      "embedders",
      [](st_file& f, std::string&) {
        f.tensors.at("transformer_blocks.1.norm1.emb.timestep_embedder.linear_1.weight").values[17] += 0.25f;
      },
      "transformer_blocks.1.norm1.emb.timestep_embedder.linear_1.weight differs from block 0's at element 17");
  expect_refused(
      "class-embedders",
      [](st_file& f, std::string&) {
        f.tensors.at("transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight").values[0] = 3.0f;
      },
      "transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight differs from block 0's");
  expect_refused(
      "norm-type", [](st_file&, std::string& c) { c = replaced(c, "\"ada_norm_zero\"", "\"ada_norm\""); },
      "norm_type 'ada_norm' is not supported");
  expect_refused(
      "layers", [](st_file&, std::string& c) { c = replaced(c, "\"num_layers\": 2", "\"num_layers\": 3"); },
      "missing tensor transformer_blocks.2.");
  expect_refused(
      "heads",
      [](st_file&, std::string& c) { c = replaced(c, "\"attention_head_dim\": 32", "\"attention_head_dim\": 16"); },
      "pos_embed.proj.weight: wrong shape [64, 4, 2, 2] (expected [32, 4, 2, 2])");

  // No weights file at all, or only a sharded one.
  const fs::path empty = temp_dir("empty");
  write_text(empty / "config.json", read_text(fixture / "config.json"));
  EXPECT_FALSE(load_diffusers_dit(empty).ok());
  write_text(empty / "diffusion_pytorch_model.safetensors.index.json", "{}");
  auto sharded = load_diffusers_dit(empty);
  ASSERT_FALSE(sharded.ok());
  EXPECT_NE(sharded.err().what.find("sharded"), std::string::npos) << sharded.err().what;
}

TEST(DiffusersDit, FromNamedRefusesWhatLoadWould) {
  auto c = *stock_config("tiny-dit");
  std::map<std::string, std::vector<float>> t;
  for (const auto& s : weight_specs(c)) t[s.name] = std::vector<float>(static_cast<std::size_t>(s.numel()), 0.01f);
  auto extra = t;
  extra["blocks.9.qkv.weight"] = {1.0f};
  auto r = model::from_named(c, std::move(extra));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().what.find("unexpected tensor blocks.9.qkv.weight"), std::string::npos) << r.err().what;
  auto nan = t;
  nan["final.ada.bias"][3] = std::nanf("");
  r = model::from_named(c, std::move(nan));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().what.find("final.ada.bias: element 3 is not finite"), std::string::npos) << r.err().what;
  auto missing = t;
  missing.erase("y_embed.table");
  r = model::from_named(c, std::move(missing));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().what.find("missing tensor y_embed.table"), std::string::npos) << r.err().what;
  EXPECT_TRUE(model::from_named(c, std::move(t)).ok());
}
