#pragma once
// The class-conditional DiT (Peebles & Xie) from diffusers' layout: DiTTransformer2DModel (or
// the legacy Transformer2DModel with norm_type ada_norm_zero, which diffusers remaps to it), a
// transformer/ folder with config.json and diffusion_pytorch_model.safetensors. Its tensors
// map onto gfdit's names (README.md, "Diffusers DiT checkpoints"); what gfdit cannot run is
// refused by name, never approximated.
#include <filesystem>

#include "common/result.hpp"
#include "kernels/dit/config.hpp"
#include "kernels/dit/model.hpp"

namespace gfdit::dit {

// gfdit's config for a diffusers DiT config.json: hidden = num_attention_heads *
// attention_head_dim, depth = num_layers, patch, in_channels, num_embeds_ada_norm classes,
// latent sample_size^2 (or sample_size_override^2 when > 0), freq_shift 1. Missing fields take
// DiTTransformer2DModel's defaults, as diffusers does. Refused, naming the field: a norm_type
// other than ada_norm_zero, an activation other than gelu-approximate, affine norms, attention
// without biases, out_channels other than in_channels or 2 * in_channels (learned sigma).
// At a size other than sample_size diffusers interpolates its positions (i * base / grid);
// gfdit keeps integer positions, so only sample_size matches diffusers exactly.
result<model_config> config_from_diffusers(const std::filesystem::path& config_json, int sample_size_override = 0);

// Every tensor of transformer_dir/diffusion_pytorch_model.safetensors (F32, F16 or BF16) mapped
// onto gfdit's names. With learned sigma only the epsilon half of proj_out_2 is kept. Every
// block's conditioning embedder must equal block 0's (gfdit has one). Missing, unexpected,
// wrong-shape and non-finite tensors are errors naming the tensor.
result<model> load_diffusers_dit(const std::filesystem::path& transformer_dir, int sample_size_override = 0);

}  // namespace gfdit::dit
