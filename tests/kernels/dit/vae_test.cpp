// The SD VAE decoder (kernels/dit/vae.hpp): the tiny fixture against its PyTorch reference
// (models/reference/make_vae_fixture.py), the same bits on every run, and hostile files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include <nlohmann/json.hpp>

#include "kernels/dit/safetensors.hpp"
#include "kernels/dit/vae.hpp"
#include "tests/kernels/dit/rel_rms.hpp"

namespace fs = std::filesystem;
using namespace gfdit;
using namespace gfdit::dit;
using gfdit::dit::testing::rel_rms;

namespace {

const fs::path fixture = fs::path(GFDIT_SOURCE_DIR) / "tests/kernels/dit/fixtures/tiny-vae";

struct reference {
  std::vector<float> latent, image, image_f64;
  int h = 0, w = 0;
};

reference read_reference() {
  auto io = read_safetensors(fixture / "reference_io.safetensors");
  EXPECT_TRUE(io.ok()) << (io.ok() ? "" : io.err().what);
  if (!io) return {};
  const auto& latent = io->tensors.at("latent");
  reference r{latent.values, io->tensors.at("image").values, io->tensors.at("image_f64").values,
              static_cast<int>(latent.shape[2]), static_cast<int>(latent.shape[3])};
  return r;
}

// A copy of the fixture in a fresh folder, its config and tensors edited by the caller.
fs::path hostile_copy(const std::string& name, const std::function<void(nlohmann::json&)>& edit_config,
                      const std::function<void(st_file&)>& edit_weights) {
  const fs::path dir = fs::temp_directory_path() / ("gfdit-vae-" + std::to_string(::getpid())) / name;
  fs::create_directories(dir);
  auto cfg = nlohmann::json::parse(std::ifstream(fixture / "config.json"));
  edit_config(cfg);
  std::ofstream(dir / "config.json") << cfg.dump(2);
  auto weights = read_safetensors(fixture / "diffusion_pytorch_model.safetensors");
  EXPECT_TRUE(weights.ok());
  edit_weights(*weights);
  EXPECT_TRUE(write_safetensors(dir / "diffusion_pytorch_model.safetensors", *weights, "F32").ok());
  return dir;
}

void no_config_edit(nlohmann::json&) {}
void no_weight_edit(st_file&) {}

}  // namespace

TEST(VaeDecoder, TinyFixtureMatchesPyTorchFp32AndFloat64) {
  auto vae = vae_decoder::load(fixture);
  ASSERT_TRUE(vae.ok()) << vae.err().what;
  EXPECT_EQ(vae->config().block_out_channels, (std::vector<int>{32, 32, 64, 64}));
  EXPECT_EQ(vae->config().upsamplers(), 3);
  const reference ref = read_reference();
  ASSERT_EQ(ref.latent.size(), 4u * 8 * 8);
  ASSERT_EQ(ref.image.size(), 3u * 64 * 64);
  auto image = vae->decode(ref.latent, ref.h, ref.w);
  ASSERT_TRUE(image.ok()) << image.err().what;
  ASSERT_EQ(image->size(), ref.image.size());
  const double vs_fp32 = rel_rms(*image, ref.image), vs_f64 = rel_rms(*image, ref.image_f64);
  std::printf("tiny-vae: relative rms error %.3g against PyTorch fp32, %.3g against float64\n", vs_fp32, vs_f64);
  EXPECT_LE(vs_fp32, 1e-4);
  EXPECT_LE(vs_f64, 1e-4);
}

TEST(VaeDecoder, DecodingTwiceGivesTheSameBits) {
  auto vae = vae_decoder::load(fixture);
  ASSERT_TRUE(vae.ok()) << vae.err().what;
  const reference ref = read_reference();
  auto a = vae->decode(ref.latent, ref.h, ref.w);
  auto b = vae->decode(ref.latent, ref.h, ref.w);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  EXPECT_EQ(std::memcmp(a->data(), b->data(), a->size() * sizeof(float)), 0);
  // A copy of the decoder decodes to the same bits too (it owns its weights).
  const vae_decoder copy = *vae;
  auto c = copy.decode(ref.latent, ref.h, ref.w);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::memcmp(a->data(), c->data(), a->size() * sizeof(float)), 0);
}

TEST(VaeDecoder, AnyLatentSizeGivesEightTimesThePixels) {
  auto vae = vae_decoder::load(fixture);
  ASSERT_TRUE(vae.ok()) << vae.err().what;
  std::vector<float> latent(4 * 3 * 5, 0.5f);
  auto image = vae->decode(latent, 3, 5);
  ASSERT_TRUE(image.ok()) << image.err().what;
  EXPECT_EQ(image->size(), 3u * 24 * 40);
  for (float v : *image) ASSERT_TRUE(std::isfinite(v));
}

TEST(VaeDecoder, EncoderTensorsAndOldAttentionNamesAreAccepted) {
  // A full AutoencoderKL file holds the encoder too, and older files name the attention
  // query/key/value/proj_attn; diffusers loads both, and so does the decoder, to the same bits.
  const fs::path dir = hostile_copy("full-autoencoder", no_config_edit, [](st_file& f) {
    f.tensors.emplace("encoder.conv_in.weight", st_tensor{"F32", {32, 3, 3, 3}, std::vector<float>(32 * 27, 0.1f)});
    f.tensors.emplace("quant_conv.weight", st_tensor{"F32", {8, 8, 1, 1}, std::vector<float>(64, 0.1f)});
    const std::string a = "decoder.mid_block.attentions.0.";
    for (auto [now, old] : {std::pair{"to_q", "query"}, {"to_k", "key"}, {"to_v", "value"}, {"to_out.0", "proj_attn"}})
      for (const char* part : {".weight", ".bias"}) {
        auto node = f.tensors.extract(a + now + part);
        node.key() = a + old + part;
        f.tensors.insert(std::move(node));
      }
  });
  auto vae = vae_decoder::load(dir);
  fs::remove_all(dir);
  ASSERT_TRUE(vae.ok()) << vae.err().what;
  auto plain = vae_decoder::load(fixture);
  ASSERT_TRUE(plain.ok());
  const reference ref = read_reference();
  auto a = vae->decode(ref.latent, ref.h, ref.w), b = plain->decode(ref.latent, ref.h, ref.w);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(VaeDecoder, HostileFilesAreRefusedNamingTheProblem) {
  const std::string mid_q = "decoder.mid_block.attentions.0.to_q.weight";
  struct hostile {
    std::string name;
    std::function<void(nlohmann::json&)> config;
    std::function<void(st_file&)> weights;
    std::string expect;  // in the error text
  };
  const std::vector<hostile> cases = {
      {"missing-tensor", no_config_edit,
       [](st_file& f) { f.tensors.erase("decoder.up_blocks.2.resnets.0.conv_shortcut.bias"); },
       "missing tensor decoder.up_blocks.2.resnets.0.conv_shortcut.bias"},
      {"extra-decoder-tensor", no_config_edit,
       [](st_file& f) {
         f.tensors.emplace("decoder.up_blocks.3.upsamplers.0.conv.bias",
                           st_tensor{"F32", {32}, std::vector<float>(32)});
       },
       "unexpected tensor decoder.up_blocks.3.upsamplers.0.conv.bias"},
      {"stray-tensor", no_config_edit,
       [](st_file& f) {
         f.tensors.emplace("text_model.weight", st_tensor{"F32", {2}, std::vector<float>(2)});
       },
       "unexpected tensor text_model.weight"},
      {"wrong-shape", no_config_edit,
       [](st_file& f) {
         auto& t = f.tensors.at("decoder.conv_in.weight");
         t.shape = {64, 4, 1, 9};
       },
       "decoder.conv_in.weight: wrong shape [64, 4, 1, 9] (expected [64, 4, 3, 3])"},
      {"nan-weight", no_config_edit,
       [&](st_file& f) { f.tensors.at(mid_q).values[17] = std::numeric_limits<float>::quiet_NaN(); },
       mid_q + ": element 17 is not finite"},
      {"inf-weight", no_config_edit,
       [](st_file& f) { f.tensors.at("post_quant_conv.bias").values[0] = std::numeric_limits<float>::infinity(); },
       "post_quant_conv.bias: element 0 is not finite"},
      {"groups-do-not-divide", [](nlohmann::json& j) { j["norm_num_groups"] = 6; }, no_weight_edit,
       "field 'norm_num_groups': 6 does not divide block_out_channels entry 32"},
      {"layers-not-an-integer", [](nlohmann::json& j) { j["layers_per_block"] = "two"; }, no_weight_edit,
       "field 'layers_per_block': not an integer"},
      {"no-blocks", [](nlohmann::json& j) { j["block_out_channels"] = nlohmann::json::array(); }, no_weight_edit,
       "field 'block_out_channels'"},
      {"zero-scaling", [](nlohmann::json& j) { j["scaling_factor"] = 0; }, no_weight_edit, "field 'scaling_factor'"},
      {"other-up-block", [](nlohmann::json& j) { j["up_block_types"][1] = "AttnUpDecoderBlock2D"; }, no_weight_edit,
       "field 'up_block_types': \"AttnUpDecoderBlock2D\""},
      {"other-class", [](nlohmann::json& j) { j["_class_name"] = "AutoencoderTiny"; }, no_weight_edit,
       "field '_class_name'"},
      // A config that disagrees with the weights: the first tensor whose shape differs.
      {"config-disagrees",
       [](nlohmann::json& j) {
         j["block_out_channels"] = {32, 32, 64, 128};
       },
       no_weight_edit, "decoder.conv_in.weight: wrong shape [64, 4, 3, 3] (expected [128, 4, 3, 3])"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path dir = hostile_copy(c.name, c.config, c.weights);
    auto vae = vae_decoder::load(dir);
    fs::remove_all(dir);
    ASSERT_FALSE(vae.ok());
    EXPECT_NE(vae.err().what.find(c.expect), std::string::npos) << vae.err().what;
    // Config errors name the file.
    if (c.expect.starts_with("field")) {
      EXPECT_NE(vae.err().what.find("config.json"), std::string::npos) << vae.err().what;
    }
  }

  // Not JSON at all, and no folder at all.
  const fs::path dir = hostile_copy("not-json", no_config_edit, no_weight_edit);
  std::ofstream(dir / "config.json") << "{\"block_out_channels\": [32, ";
  auto bad_json = vae_decoder::load(dir);
  fs::remove_all(dir);
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.err().what.find("not JSON"), std::string::npos) << bad_json.err().what;
  EXPECT_FALSE(vae_decoder::load(fixture / "no-such-folder").ok());
}

TEST(VaeDecoder, WrongLatentsAreRefused) {
  auto vae = vae_decoder::load(fixture);
  ASSERT_TRUE(vae.ok()) << vae.err().what;
  std::vector<float> latent(4 * 8 * 8, 0.0f);
  auto wrong_size = vae->decode(latent, 8, 9);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.err().what.find("latent has 256 values, expected 288 (4 x 8 x 9)"), std::string::npos)
      << wrong_size.err().what;
  auto three_channels = vae->decode(std::span<const float>(latent).first(3 * 64), 8, 8);
  ASSERT_FALSE(three_channels.ok());
  EXPECT_NE(three_channels.err().what.find("expected 256"), std::string::npos);
  auto empty = vae->decode({}, 0, 8);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.err().what.find("latent size 0x8"), std::string::npos) << empty.err().what;
  latent[5] = std::numeric_limits<float>::quiet_NaN();
  auto nan = vae->decode(latent, 8, 8);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.err().what.find("latent element 5 is not finite"), std::string::npos) << nan.err().what;
}

TEST(VaeDecoder, SdConfigParsesAndNamesEveryTensor) {
  // diffusers' SD 1.x vae/config.json, verbatim keys (the unknown ones are ignored).
  const std::string sd = R"({
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 512, "scaling_factor": 0.18215, "shift_factor": null, "force_upcast": true,
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]})";
  auto c = vae_config_from_json(sd, "sd/config.json");
  ASSERT_TRUE(c.ok()) << c.err().what;
  EXPECT_FLOAT_EQ(c->scaling_factor, 0.18215f);
  EXPECT_EQ(c->shift_factor, 0.0f);
  EXPECT_EQ(c->layers_per_block, 2);
  const auto specs = vae_decoder_specs(*c);
  std::int64_t params = 0;
  for (const auto& s : specs) params += s.numel();
  EXPECT_EQ(specs.size(), 140u);  // as many as sd_vae.py's state_dict
  EXPECT_EQ(params, 49490199);    // post_quant_conv + SD's decoder
  EXPECT_EQ(specs.front().name, "post_quant_conv.weight");
  EXPECT_EQ(specs.back().name, "decoder.conv_out.bias");
}
