"""The Stable Diffusion VAE decoder (diffusers' AutoencoderKL, decoder half) in PyTorch: the
reference the C++ decoder (kernels/dit/vae.cpp) is checked against.

Written from the public architecture; parameter names are diffusers' state_dict names, so the
decoder half of a real `vae/diffusion_pytorch_model.safetensors` loads (`load_decoder`):

  latent / scaling_factor (+ shift_factor) -> post_quant_conv (1x1)
  -> decoder.conv_in (3x3, latent_channels -> block_out_channels[-1])
  -> decoder.mid_block: resnets.0, attentions.0 (GroupNorm, one head over the H*W tokens,
     to_q/to_k/to_v/to_out.0 linears, residual), resnets.1
  -> decoder.up_blocks.{i} for the reversed block_out_channels: layers_per_block + 1 ResnetBlock2D
     (GroupNorm -> SiLU -> conv3x3 -> GroupNorm -> SiLU -> conv3x3, + conv_shortcut 1x1 when the
     channels change), then upsamplers.0.conv (nearest 2x, conv3x3) except in the last block
  -> decoder.conv_norm_out, SiLU, decoder.conv_out (3x3 -> out_channels)

Every GroupNorm has eps 1e-6. The output is nominally in [-1, 1] and not clamped here.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import load_file, save_file

# diffusers' vae/config.json for SD 1.x/2.x (the keys this decoder reads).
SD_CONFIG = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "act_fn": "silu",
    "sample_size": 512,
}

EPS = 1e-6


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=EPS, affine=True)


class ResnetBlock2D(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout is 0 at inference
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """The mid block's attention: one head of dim C over the H*W tokens, residual added."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = _norm(channels, groups)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).reshape(b, c, h * w).transpose(1, 2)  # [B, tokens, C]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        o = self.to_out[0](p @ v)
        return x + o.transpose(1, 2).reshape(b, c, h, w)


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int, add_attention: bool = True):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(channels, groups)]) if add_attention else None

    def forward(self, x):
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class Upsample2D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, groups: int, upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class Decoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        ch = list(cfg["block_out_channels"])
        groups = cfg["norm_num_groups"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], ch[-1], 3, padding=1)
        self.mid_block = MidBlock(ch[-1], groups, cfg.get("mid_block_add_attention", True))
        rev = list(reversed(ch))
        blocks, prev = [], rev[0]
        for i, out in enumerate(rev):
            blocks.append(UpDecoderBlock2D(prev, out, cfg["layers_per_block"] + 1, groups, i != len(rev) - 1))
            prev = out
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = _norm(ch[0], groups)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x):
        x = self.mid_block(self.conv_in(x))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    """AutoencoderKL's decode path: `forward(latent)` takes the diffusion model's (scaled) latent."""

    def __init__(self, cfg: dict):
        super().__init__()
        check_config(cfg)
        self.cfg = dict(cfg)
        c = cfg["latent_channels"]
        self.post_quant_conv = nn.Conv2d(c, c, 1) if cfg.get("use_post_quant_conv", True) else None
        self.decoder = Decoder(cfg)

    def forward(self, latent):
        z = latent / self.cfg["scaling_factor"]
        if self.cfg.get("shift_factor") is not None:
            z = z + self.cfg["shift_factor"]
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)


def check_config(cfg: dict):
    g = cfg["norm_num_groups"]
    for c in cfg["block_out_channels"]:
        if c % g:
            raise ValueError(f"block_out_channels entry {c} is not divisible by norm_num_groups {g}")
    for t in cfg.get("up_block_types", []):
        if t != "UpDecoderBlock2D":
            raise ValueError(f"up_block_types entry {t} is not UpDecoderBlock2D")


# diffusers renames these (the attention block of older checkpoints) when it loads a file.
_DEPRECATED = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def decoder_state(tensors: dict) -> dict:
    """The decoder half of an AutoencoderKL state dict, old attention names renamed, as fp32."""
    out = {}
    for name, t in tensors.items():
        if not (name.startswith("decoder.") or name.startswith("post_quant_conv.")):
            continue  # encoder.*, quant_conv.*
        parts = name.split(".")
        if len(parts) >= 3 and parts[-2] in _DEPRECATED and ".attentions." in name:
            name = ".".join(parts[:-2] + [_DEPRECATED[parts[-2]], parts[-1]])
        out[name] = t.float()
    return out


def load_decoder(folder: str) -> VAEDecoder:
    """A diffusers vae folder (config.json + diffusion_pytorch_model.safetensors) -> VAEDecoder."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    m = VAEDecoder(cfg)
    m.load_state_dict(decoder_state(load_file(os.path.join(folder, "diffusion_pytorch_model.safetensors"))))
    return m.eval()


def randomize(m: VAEDecoder, seed: int):
    """Weights that keep activations O(1): normal with std 1/sqrt(fan_in) for convs and linears,
    small biases, GroupNorm affines near (1, 0) but not exactly, so every parameter matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def write_random_decoder(folder: str, cfg: dict, seed: int = 0, latent_hw=(8, 8), dtype=torch.float32,
                         latent_seed: int = 1, with_f64: bool = True) -> dict:
    """Writes a random-initialised decoder (config.json, diffusion_pytorch_model.safetensors in
    `dtype`) and reference_io.safetensors: `latent` [1, C, h, w], `image` (fp32 on the CPU) and
    `image_f64` (float64, stored as F32; unless with_f64 is off), both computed from the weights exactly as stored."""
    os.makedirs(folder, exist_ok=True)
    m = VAEDecoder(cfg)
    randomize(m, seed)
    stored = {k: v.detach().to(dtype).contiguous() for k, v in m.state_dict().items()}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file(stored, os.path.join(folder, "diffusion_pytorch_model.safetensors"), {"format": "pt"})

    m = load_decoder(folder)  # the stored (possibly rounded) weights, through the loading path
    h, w = latent_hw
    g = torch.Generator().manual_seed(latent_seed)
    # A diffusion latent has about unit variance after scaling by scaling_factor.
    latent = torch.randn((1, cfg["latent_channels"], h, w), generator=g)
    with torch.no_grad():
        io = {"latent": latent, "image": m(latent).contiguous()}
        if with_f64:
            # Computed in float64, stored rounded to F32 (neither file reader knows F64); the
            # rounding (2^-24 relative) is far below any tolerance it is used for.
            io["image_f64"] = m.double()(latent.double()).float().contiguous()
    save_file(io, os.path.join(folder, "reference_io.safetensors"),
              {"seed": str(seed), "latent_seed": str(latent_seed), "weights_dtype": str(dtype),
               "image_f64": "computed in float64, rounded to F32"})
    return io
