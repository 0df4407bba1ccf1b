"""The class-conditional DiT (Peebles & Xie) as diffusers' DiTTransformer2DModel lays it out, written
from the public architecture with diffusers' exact parameter names, so a real checkpoint's
state_dict (transformer/diffusion_pytorch_model.safetensors) loads into it with load_state_dict.

What it computes, as diffusers does (src/diffusers/models/transformers/dit_transformer_2d.py,
attention.py BasicTransformerBlock(norm_type="ada_norm_zero"), normalization.py AdaLayerNormZero,
embeddings.py PatchEmbed / Timesteps / TimestepEmbedding / LabelEmbedding):
- pos_embed: a p x p stride-p conv, tokens row-major, plus fixed 2-D sin-cos positions (first
  half of the hidden encodes the column, second half the row; [sin | cos] of the integer
  position times 10000^(-k / (hidden / 4))).
- conditioning (every block's norm1.emb, copies of one embedder in real checkpoints):
  Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1), i.e. [cos | sin] of
  t * exp(-ln(10000) k / 127), computed in float32 -> linear_1 -> SiLU -> linear_2, plus the
  class embedding (num_classes + 1 rows; the last is the null class).
- block: norm1.linear(SiLU(c)) chunked (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
  gate_mlp); LayerNorm (no affine, eps 1e-6) modulated -> to_q/to_k/to_v -> softmax attention
  (scale 1/sqrt(head_dim)) -> to_out.0, gated residual; norm3 (no affine, eps = norm_eps,
  1e-5 by default) modulated -> ff.net.0.proj -> tanh-GELU -> ff.net.2, gated residual.
- output: proj_out_1(SiLU(block 0's conditioning)) chunked (shift, scale); norm_out (eps 1e-6)
  modulated -> proj_out_2, whose outputs per token are ordered (dy, dx, channel)
  ("nhwpqc->nchpwq"); with learned sigma the first in_channels channels are epsilon.

`gfdit_rounding=True` computes what gfdit's engine should: weights and activations rounded to
bf16 where kernels/dit/forward.cpp rounds, timestep features in float64, and gfdit's LayerNorm
eps 1e-6 in the MLP half too. It is the tight parity target; the plain float32 / float64 runs are
the model itself.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import save_file

# Attention through F.scaled_dot_product_attention (what diffusers runs) instead of the explicit
# softmax the parity fixtures were written with; the speed peer turns it on.
SDPA = False


def tiny_config(**kw) -> dict:
    """A DiTTransformer2DModel config.json (the fields diffusers writes), small by default."""
    cfg = {
        "_class_name": "DiTTransformer2DModel",
        "_diffusers_version": "0.30.0",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": 32,
        "dropout": 0.0,
        "in_channels": 4,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-5,
        "norm_num_groups": 32,
        "norm_type": "ada_norm_zero",
        "num_attention_heads": 2,
        "num_embeds_ada_norm": 10,
        "num_layers": 2,
        "out_channels": 8,
        "patch_size": 2,
        "sample_size": 8,
        "upcast_attention": False,
    }
    cfg.update(kw)
    return cfg


def _rb(x: torch.Tensor, on: bool) -> torch.Tensor:
    return x.to(torch.bfloat16).to(x.dtype) if on else x


def _linear(m: nn.Linear, x: torch.Tensor, rb: bool) -> torch.Tensor:
    if not rb:
        return m(x)
    return F.linear(x, _rb(m.weight, True), _rb(m.bias, True))


def timestep_proj(t: torch.Tensor, dtype: torch.dtype, rb: bool = False) -> torch.Tensor:
    """Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1): [cos | sin], in `dtype`
    (diffusers computes it in float32); gfdit computes it in float64 and rounds to bf16."""
    work = torch.float64 if rb else dtype
    k = torch.arange(128, dtype=work, device=t.device)
    w = torch.exp(-math.log(10000.0) * k / (128 - 1))
    ang = t.to(work)[:, None] * w[None, :]
    out = torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).to(dtype)
    return _rb(out, rb)


def sincos_2d(hidden: int, grid: int) -> torch.Tensor:
    """get_2d_sincos_pos_embed at base_size = grid, interpolation_scale 1 (integer positions):
    [grid * grid, hidden] in float64, tokens row-major, column in the first half."""
    quarter = hidden // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    idx = torch.arange(grid * grid)
    halves = []
    for coord in (idx % grid, idx // grid):  # column, then row
        ang = coord.to(torch.float64)[:, None] * omega[None, :]
        halves.append(torch.cat([torch.sin(ang), torch.cos(ang)], dim=1))
    return torch.cat(halves, dim=1)


class TimestepEmbedding(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.linear_1 = nn.Linear(256, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, f, rb=False):
        h = _rb(F.silu(_rb(_linear(self.linear_1, f, rb), rb)), rb)
        return _rb(_linear(self.linear_2, h, rb), rb)


class LabelEmbedding(nn.Module):
    def __init__(self, num_classes: int, hidden: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden)  # class_dropout_prob 0.1 > 0

    def forward(self, labels, rb=False):
        return F.embedding(labels, _rb(self.embedding_table.weight, rb))


class CombinedTimestepLabelEmbeddings(nn.Module):
    def __init__(self, num_classes: int, hidden: int):
        super().__init__()
        self.timestep_embedder = TimestepEmbedding(hidden)
        self.class_embedder = LabelEmbedding(num_classes, hidden)

    def forward(self, t, labels, dtype, rb=False):
        return self.timestep_embedder(timestep_proj(t, dtype, rb), rb) + self.class_embedder(labels, rb)


class AdaLayerNormZero(nn.Module):
    def __init__(self, hidden: int, num_classes: int):
        super().__init__()
        self.emb = CombinedTimestepLabelEmbeddings(num_classes, hidden)
        self.linear = nn.Linear(hidden, 6 * hidden)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q = nn.Linear(hidden, inner)
        self.to_k = nn.Linear(hidden, inner)
        self.to_v = nn.Linear(hidden, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, hidden), nn.Dropout(0.0)])

    def forward(self, x, rb=False):
        b, n, _ = x.shape
        q, k, v = (_rb(_linear(m, x, rb), rb).reshape(b, n, self.heads, -1).transpose(1, 2)
                   for m in (self.to_q, self.to_k, self.to_v))
        if SDPA and not rb:
            o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
        else:
            att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]), dim=-1)
            o = _rb((att @ v).transpose(1, 2).reshape(b, n, -1), rb)
        return _rb(_linear(self.to_out[0], o, rb), rb)


class GELU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)


class FeedForward(nn.Module):
    def __init__(self, hidden: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GELU(hidden, hidden * mult), nn.Dropout(0.0), nn.Linear(hidden * mult, hidden)])

    def forward(self, x, rb=False):
        h = _rb(F.gelu(_rb(_linear(self.net[0].proj, x, rb), rb), approximate="tanh"), rb)
        return _rb(_linear(self.net[2], h, rb), rb)


class BasicTransformerBlock(nn.Module):
    """norm_type "ada_norm_zero", self-attention only (no attn2/norm2, as in DiT)."""

    def __init__(self, cfg: dict):
        super().__init__()
        hidden = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        self.norm_eps = cfg.get("norm_eps", 1e-5)
        self.norm1 = AdaLayerNormZero(hidden, cfg["num_embeds_ada_norm"])
        self.attn1 = Attention(hidden, cfg["num_attention_heads"], cfg["attention_head_dim"])
        self.ff = FeedForward(hidden)

    def forward(self, x, t, labels, rb=False):
        h = x.shape[-1]
        c = self.norm1.emb(t, labels, x.dtype, rb)
        mod = _rb(_linear(self.norm1.linear, _rb(F.silu(c), rb), rb), rb)[:, None, :]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)
        hn = _rb(F.layer_norm(x, (h,), eps=1e-6) * (1 + scale_msa) + shift_msa, rb)
        x = x + gate_msa * self.attn1(hn, rb)
        # norm3: nn.LayerNorm(dim, norm_eps, elementwise_affine=False); gfdit uses 1e-6 here too.
        hn = _rb(F.layer_norm(x, (h,), eps=1e-6 if rb else self.norm_eps) * (1 + scale_mlp) + shift_mlp, rb)
        return x + gate_mlp * self.ff(hn, rb)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: dict, hidden: int):
        super().__init__()
        p = cfg["patch_size"]
        self.proj = nn.Conv2d(cfg["in_channels"], hidden, kernel_size=(p, p), stride=p)
        # diffusers keeps the table as a non-persistent float32 buffer (not in the state_dict);
        # here it is made per call, so the float64 run gets float64 positions.
        self.hidden, self.grid = hidden, cfg["sample_size"] // p
        self._pos = {}

    def forward(self, latent, rb=False):
        w = _rb(self.proj.weight, rb)
        y = F.conv2d(_rb(latent, rb), w, _rb(self.proj.bias, rb), stride=self.proj.stride)
        y = _rb(y.flatten(2).transpose(1, 2), rb)  # BCHW -> B, tokens (row-major), hidden
        assert latent.shape[-1] // self.proj.stride[0] == self.grid, "positions at sample_size only"
        key = (y.dtype, y.device)
        if key not in self._pos:  # diffusers keeps the table as a buffer; made once per dtype and device
            pos = sincos_2d(self.hidden, self.grid)
            self._pos[key] = (pos if y.dtype == torch.float64 else pos.float()).to(y.device, y.dtype)[None]
        return y + self._pos[key]


class DiTTransformer2DModel(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        assert cfg["norm_type"] == "ada_norm_zero" and cfg["activation_fn"] == "gelu-approximate"
        self.cfg = cfg
        hidden = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        self.out_channels = cfg.get("out_channels") or cfg["in_channels"]
        self.pos_embed = PatchEmbed(cfg, hidden)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(cfg) for _ in range(cfg["num_layers"])])
        self.proj_out_1 = nn.Linear(hidden, 2 * hidden)
        self.proj_out_2 = nn.Linear(hidden, cfg["patch_size"] ** 2 * self.out_channels)

    def forward(self, latent, t, labels, gfdit_rounding=False):
        """latent [B, C, H, W], t [B], labels [B] (num_classes = null) -> [B, out_channels, H, W]."""
        rb = gfdit_rounding
        b, _, hh, ww = latent.shape
        p = self.cfg["patch_size"]
        x = self.pos_embed(latent, rb)
        for blk in self.transformer_blocks:
            x = blk(x, t, labels, rb)
        c = self.transformer_blocks[0].norm1.emb(t, labels, x.dtype, rb)
        shift, scale = _rb(_linear(self.proj_out_1, _rb(F.silu(c), rb), rb), rb).chunk(2, dim=1)
        hn = _rb(F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale[:, None]) + shift[:, None], rb)
        y = _linear(self.proj_out_2, hn, rb)
        gh, gw = hh // p, ww // p
        y = y.reshape(b, gh, gw, p, p, self.out_channels)
        return torch.einsum("nhwpqc->nchpwq", y).reshape(b, self.out_channels, gh * p, gw * p)


def random_model(cfg: dict, seed: int) -> DiTTransformer2DModel:
    """PyTorch's default init from a fixed seed (every adaLN projection non-zero, so every block
    and the final layer do work); every block's embedder is a copy of block 0's, as in the
    checkpoints converted from the original DiT."""
    torch.manual_seed(seed)
    m = DiTTransformer2DModel(cfg)
    with torch.no_grad():
        for blk in m.transformer_blocks:
            # Default Linear init makes the gates ~0.1; larger adaLN weights make the blocks count.
            blk.norm1.linear.weight.mul_(4.0)
            blk.norm1.linear.bias.mul_(4.0)
        m.proj_out_1.weight.mul_(4.0)
        first = m.transformer_blocks[0].norm1.emb.state_dict()
        for blk in m.transformer_blocks[1:]:
            blk.norm1.emb.load_state_dict(first)
    return m.eval()


def save_transformer(m: DiTTransformer2DModel, root: str, dtype=torch.float32) -> str:
    """Writes root/transformer/{diffusion_pytorch_model.safetensors, config.json}; returns the dir."""
    out = os.path.join(root, "transformer")
    os.makedirs(out, exist_ok=True)
    sd = {k: v.detach().to(dtype).contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(out, "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(m.cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    return out


@torch.no_grad()
def reference_outputs(m: DiTTransformer2DModel, latent, t, labels) -> dict:
    """The model's output in float32 (diffusers' arithmetic), in float64, and with gfdit's
    rounding emulated (all [B, out_channels, H, W], as float32 tensors)."""
    fp32 = m.float()(latent.float(), t.float(), labels)
    rb = m(latent.float(), t.float(), labels, gfdit_rounding=True)
    m64 = m.double()
    f64 = m64(latent.double(), t.double(), labels)
    m.float()
    return {"out_fp32": fp32, "out_f64": f64.float(), "out_gfdit_rounding": rb}
