#pragma once
// The Stable Diffusion VAE decoder (diffusers' AutoencoderKL, decoder half) on the CPU, in fp32:
// latent [C][h][w] -> image [out_channels][8h][8w] (three upsamplers for SD's four blocks),
// nominally in [-1, 1], not clamped. Every reduction has a fixed order (convolutions and linears
// are numerics.hpp's dot over contiguous rows), so a latent gives the same bits on every run.
// The reference is models/reference/sd_vae.py.
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "kernels/dit/model.hpp"  // tensor_spec

namespace gfdit::dit {

class gpu_vae_decoder;  // vae_gpu.hpp: uploads the weights below

// diffusers' vae/config.json (AutoencoderKL), the keys the decoder reads. A missing key takes
// diffusers' default; other keys (force_upcast, sample_size, down_block_types, ...) are ignored.
struct vae_config {
  int in_channels = 3;  // the encoder's; kept for the round trip, unused here
  int out_channels = 3;
  int latent_channels = 4;
  std::vector<int> block_out_channels = {64};
  int layers_per_block = 1;  // each up block has layers_per_block + 1 resnets
  int norm_num_groups = 32;
  float scaling_factor = 0.18215f;  // the decoder sees latent / scaling_factor + shift_factor
  float shift_factor = 0.0f;        // null in SD's config; set by SD3- and Flux-style VAEs
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  int upsamplers() const noexcept { return static_cast<int>(block_out_channels.size()) - 1; }
};

// `where` (the file) starts every error, and the error names the field.
result<vae_config> vae_config_from_json(std::string_view text, const std::string& where = "config.json");
result<void> validate(const vae_config& c);

// The decoder's tensors under diffusers' state_dict names, in load order.
std::vector<tensor_spec> vae_decoder_specs(const vae_config& c);

class vae_decoder {
 public:
  // DIR/config.json and DIR/diffusion_pytorch_model.safetensors (F32, F16 or BF16). encoder.* and
  // quant_conv.* tensors of a full AutoencoderKL file are ignored, and the attention's old names
  // (query, key, value, proj_attn) are accepted as diffusers accepts them; anything else
  // missing, unexpected, misshapen or not finite is an error naming the tensor.
  static result<vae_decoder> load(const std::filesystem::path& dir);
  // The same from a parsed config and tensors (name -> values in the spec's shape); `where`
  // names the source in errors.
  static result<vae_decoder> from_tensors(const vae_config& c, std::map<std::string, std::vector<float>> t,
                                          const std::string& where);

  // latent [latent_channels][h][w] (the diffusion model's, still scaled) -> [out_channels][sh][sw]
  // with s = 2^upsamplers() (8 for SD). h and w are 1..512.
  result<std::vector<float>> decode(std::span<const float> latent, int h, int w) const;

  const vae_config& config() const noexcept { return config_; }

 private:
  friend class gpu_vae_decoder;  // reads the weights once, to upload them

  struct conv {  // weight [out][in][k][k], which is already the im2col row layout
    int out = 0, in = 0, k = 1;
    std::vector<float> w, b;
  };
  struct norm {
    std::vector<float> gamma, beta;
  };
  struct linear {  // [out][in]
    int out = 0, in = 0;
    std::vector<float> w, b;
  };
  struct resnet {
    norm norm1, norm2;
    conv conv1, conv2;
    std::optional<conv> shortcut;
  };
  struct attention {
    norm group_norm;
    linear q, k, v, o;
  };
  struct up_block {
    std::vector<resnet> resnets;
    std::optional<conv> upsampler;
  };
  struct fmap;  // an activation, [c][h][w]

  fmap run_resnet(const resnet& r, const fmap& x) const;
  fmap run_attention(const attention& a, const fmap& x) const;

  vae_config config_;
  std::optional<conv> post_quant_conv_;
  conv conv_in_;
  resnet mid_resnet0_, mid_resnet1_;
  std::optional<attention> mid_attention_;
  std::vector<up_block> up_blocks_;
  norm norm_out_;
  conv conv_out_;
};

}  // namespace gfdit::dit
