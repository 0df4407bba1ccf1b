#include "kernels/dit/config.hpp"

#include <nlohmann/json.hpp>

namespace gfdit::dit {

namespace {
result<void> bad(std::string what) { return make_error(errc::invalid_argument, "dit config: " + what); }
}  // namespace

result<void> validate(const model_config& c) {
  if (c.hidden <= 0 || c.depth <= 0 || c.heads <= 0 || c.mlp_ratio <= 0 || c.latent_channels <= 0)
    return bad("hidden, depth, heads, mlp_ratio and latent_channels must be positive");
  if (c.hidden % c.heads != 0)
    return bad("heads (" + std::to_string(c.heads) + ") must divide hidden (" + std::to_string(c.hidden) + ")");
  if (c.patch_t <= 0 || c.patch_h <= 0 || c.patch_w <= 0) return bad("patch sizes must be positive");
  if (c.frames <= 0 || c.height <= 0 || c.width <= 0) return bad("latent shape must be positive");
  if (c.frames % c.patch_t || c.height % c.patch_h || c.width % c.patch_w)
    return bad("patch size must divide the latent shape");
  if (c.cond == conditioning::class_label && c.num_classes <= 0) return bad("num_classes must be positive");
  if (c.cond == conditioning::text && (c.text_dim <= 0 || c.text_tokens <= 0))
    return bad("text conditioning needs text_dim and text_tokens");
  if (c.pos == positional::rope && (c.head_dim() % 2 != 0 || c.head_dim() < 6))
    return bad("rope needs an even head_dim of at least 6");
  if (c.freq_shift < 0 || c.freq_shift >= 128) return bad("freq_shift must be in [0, 128)");
  if (c.pos == positional::sincos && c.hidden % 4 != 0) return bad("sin-cos needs hidden divisible by 4");
  if (c.hidden > (1 << 16) || c.depth > 1024 || c.image_tokens() > (1 << 22))
    return bad("sizes beyond the supported range");
  return {};
}

std::vector<std::string> stock_config_names() {
  return {"dit-s-2",  "dit-xl-2-256", "dit-xl-2-512", "mmdit-12b-standin", "video-dit-5b-standin",
          "tiny-dit", "tiny-mmdit"};
}

result<model_config> with_video_shape(model_config c, int width_px, int height_px, int frames_px) {
  if (width_px <= 0 || height_px <= 0 || frames_px <= 0)
    return make_error(errc::invalid_argument, "dit config: video shape must be positive");
  // Wan2.2-5B's VAE: 16x spatial, 4x temporal (+1 leading frame); round down to whole patches.
  c.frames = (frames_px - 1) / 4 + 1;
  c.height = height_px / 16 / c.patch_h * c.patch_h;
  c.width = width_px / 16 / c.patch_w * c.patch_w;
  c.frames = c.frames / c.patch_t * c.patch_t;
  if (auto v = validate(c); !v) return v.err();
  return c;
}

result<model_config> stock_config(std::string_view name) {
  model_config c;
  c.name = std::string(name);
  if (name == "dit-s-2") {
    c.hidden = 384;
    c.depth = 12;
    c.heads = 6;
    c.height = c.width = 32;
  } else if (name == "dit-xl-2-256") {
    c.hidden = 1152;
    c.depth = 28;
    c.heads = 16;
    c.height = c.width = 32;
  } else if (name == "dit-xl-2-512") {
    c.hidden = 1152;
    c.depth = 28;
    c.heads = 16;
    c.height = c.width = 64;
  } else if (name == "mmdit-12b-standin") {
    // A stand-in with FLUX.1's sizes (random weights): its 19 double + 38 single blocks, all
    // taken as single-stream blocks over 512 T5 tokens joined in front of 64x64 = 4096 image
    // tokens (16-channel latent of 1024^2, patch 2).
    c.hidden = 3072;
    c.depth = 57;
    c.heads = 24;
    c.latent_channels = 16;
    c.height = c.width = 128;
    c.cond = conditioning::text;
    c.text_dim = 4096;
    c.text_tokens = 512;
    c.pos = positional::rope;
  } else if (name == "video-dit-5b-standin") {
    // A stand-in with Wan2.2-5B's sizes (random weights); its text cross-attention is taken as joint attention (single
    // stream).
    c.hidden = 3072;
    c.depth = 30;
    c.heads = 24;
    c.latent_channels = 48;
    c.patch_t = 1;
    c.cond = conditioning::text;
    c.text_dim = 4096;
    c.text_tokens = 512;
    c.pos = positional::rope;
    return with_video_shape(c, 832, 480, 49);
  } else if (name == "tiny-dit") {
    c.hidden = 256;
    c.depth = 2;
    c.heads = 4;
    c.num_classes = 10;
    c.height = c.width = 16;
  } else if (name == "tiny-mmdit") {
    // Uneven on purpose: 7 text + 3x5x3 = 45 image tokens split unevenly over 2 and 4 ranks.
    c.hidden = 256;
    c.depth = 2;
    c.heads = 4;
    c.frames = 3;
    c.height = 10;
    c.width = 6;
    c.cond = conditioning::text;
    c.text_dim = 64;
    c.text_tokens = 7;
    c.pos = positional::rope;
  } else {
    return make_error(errc::not_found, "dit config: unknown stock config '" + std::string(name) + "'");
  }
  if (auto v = validate(c); !v) return v.err();
  return c;
}

std::string to_json(const model_config& c) {
  nlohmann::json j = {{"name", c.name},
                      {"hidden", c.hidden},
                      {"depth", c.depth},
                      {"heads", c.heads},
                      {"mlp_ratio", c.mlp_ratio},
                      {"latent_channels", c.latent_channels},
                      {"patch", {c.patch_t, c.patch_h, c.patch_w}},
                      {"conditioning", c.cond == conditioning::text ? "text" : "class_label"},
                      {"num_classes", c.num_classes},
                      {"text_dim", c.text_dim},
                      {"text_tokens", c.text_tokens},
                      {"positional", c.pos == positional::rope ? "rope" : "sincos"},
                      {"rope_theta", c.rope_theta},
                      {"latent", {c.frames, c.height, c.width}}};
  // Only when set, so the configs of files written before the field existed compare equal.
  if (c.freq_shift != 0) j["freq_shift"] = c.freq_shift;
  return j.dump();
}

result<model_config> config_from_json(std::string_view text) {
  try {
    const auto j = nlohmann::json::parse(text);
    model_config c;
    c.name = j.at("name").get<std::string>();
    c.hidden = j.at("hidden").get<int>();
    c.depth = j.at("depth").get<int>();
    c.heads = j.at("heads").get<int>();
    c.mlp_ratio = j.at("mlp_ratio").get<int>();
    c.latent_channels = j.at("latent_channels").get<int>();
    const auto& p = j.at("patch");
    if (!p.is_array() || p.size() != 3) return make_error(errc::decode_failed, "dit config: patch must be [t, h, w]");
    c.patch_t = p[0].get<int>();
    c.patch_h = p[1].get<int>();
    c.patch_w = p[2].get<int>();
    const auto cond = j.at("conditioning").get<std::string>();
    if (cond != "text" && cond != "class_label")
      return make_error(errc::decode_failed, "dit config: conditioning must be text or class_label");
    c.cond = cond == "text" ? conditioning::text : conditioning::class_label;
    c.num_classes = j.at("num_classes").get<int>();
    c.text_dim = j.at("text_dim").get<int>();
    c.text_tokens = j.at("text_tokens").get<int>();
    const auto pos = j.at("positional").get<std::string>();
    if (pos != "rope" && pos != "sincos")
      return make_error(errc::decode_failed, "dit config: positional must be rope or sincos");
    c.pos = pos == "rope" ? positional::rope : positional::sincos;
    c.rope_theta = j.at("rope_theta").get<float>();
    const auto& l = j.at("latent");
    if (!l.is_array() || l.size() != 3)
      return make_error(errc::decode_failed, "dit config: latent must be [frames, height, width]");
    c.frames = l[0].get<int>();
    c.height = l[1].get<int>();
    c.width = l[2].get<int>();
    c.freq_shift = j.value("freq_shift", 0);  // absent in files written before it existed
    if (auto v = validate(c); !v) return v.err();
    return c;
  } catch (const std::exception& e) {
    return make_error(errc::decode_failed, std::string("dit config: ") + e.what());
  }
}

}  // namespace gfdit::dit
