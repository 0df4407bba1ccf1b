"""The gfdit DiT in PyTorch: the one architecture definition the training scripts and the parity
tests share with the C++ engine (kernels/dit/forward.cpp).

It mirrors forward_cpu step for step: patchified tokens -> linear patch embedding + fixed 2-D
sin-cos positions; timestep frequencies (cos | sin, 256) -> fc1 -> SiLU -> fc2, plus the class
embedding (row num_classes is the null class); adaLN-Zero blocks (shift, scale, gate for the
attention half and the MLP half; LayerNorm without affine, eps 1e-6; tanh-GELU MLP); the final
layer (shift, scale, linear to patch values). Weight names are gfdit's (model.cpp, weight_specs),
so a state_dict saves straight into the safetensors file gfdit loads.

`round_bf16=True` rounds where the C++ path rounds to bf16, for tight parity checks.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def config_json(cfg: dict) -> str:
    """The config as gfdit's to_json writes it (the safetensors metadata 'gfdit.config')."""
    keys = ["name", "hidden", "depth", "heads", "mlp_ratio", "latent_channels", "patch", "conditioning",
            "num_classes", "text_dim", "text_tokens", "positional", "rope_theta", "latent"]
    return json.dumps({k: cfg[k] for k in keys}, separators=(",", ":"))


def patchify(cfg: dict, img: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, tokens, C*ph*pw], tokens row-major, patch vector (channel, dh, dw)."""
    _, ph, pw = cfg["patch"]
    b, c, h, w = img.shape
    x = img.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // ph) * (w // pw), c * ph * pw)


def unpatchify(cfg: dict, tok: torch.Tensor) -> torch.Tensor:
    _, ph, pw = cfg["patch"]
    _, h, w = cfg["latent"]
    c = cfg["latent_channels"]
    b = tok.shape[0]
    x = tok.reshape(b, h // ph, w // pw, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


def sincos_positions(cfg: dict) -> torch.Tensor:
    """[tokens, hidden]: the first half encodes the column, the second the row (forward.cpp; DiT's
    and MAE's order), each as [sin | cos] of position * 10000^(-k / (hidden / 4))."""
    hidden = cfg["hidden"]
    _, ph, pw = cfg["patch"]
    _, h, w = cfg["latent"]
    gh, gw = h // ph, w // pw
    per = 2 * (hidden // 4)
    half = per // 2
    k = torch.arange(half, dtype=torch.float64)
    freq = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -k / half)
    pe = torch.zeros(gh * gw, hidden, dtype=torch.float64)
    rows = torch.arange(gh * gw) // gw
    cols = torch.arange(gh * gw) % gw
    for a, coord in enumerate([cols, rows]):
        ang = coord.to(torch.float64)[:, None] * freq[None, :]
        pe[:, a * per:a * per + half] = torch.sin(ang)
        pe[:, a * per + half:(a + 1) * per] = torch.cos(ang)
    return pe.float()


def timestep_features(t: torch.Tensor) -> torch.Tensor:
    k = torch.arange(128, dtype=torch.float64, device=t.device)
    w = torch.exp(-math.log(10000.0) * k / 128.0)
    ang = t.to(torch.float64)[:, None] * w[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).float()


def _bf16(x: torch.Tensor, on: bool) -> torch.Tensor:
    return x.to(torch.bfloat16).float() if on else x


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.ada = nn.Linear(hidden, 6 * hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.fc1 = nn.Linear(hidden, hidden * mlp_ratio)
        self.fc2 = nn.Linear(hidden * mlp_ratio, hidden)

    def forward(self, x, silu_c, rb=False):
        b, n, h = x.shape
        d = h // self.heads
        mod = _bf16(self.ada(silu_c), rb)[:, None, :]
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
        hn = _bf16(F.layer_norm(x, (h,), eps=1e-6) * (1 + sc1) + sh1, rb)
        qkv = _bf16(self.qkv(hn), rb).reshape(b, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(d), dim=-1)
        o = _bf16((att @ v).transpose(1, 2).reshape(b, n, h), rb)
        x = x + g1 * _bf16(self.proj(o), rb)
        hn = _bf16(F.layer_norm(x, (h,), eps=1e-6) * (1 + sc2) + sh2, rb)
        y = _bf16(F.gelu(_bf16(self.fc1(hn), rb), approximate="tanh"), rb)
        return x + g2 * _bf16(self.fc2(y), rb)


class DiT(nn.Module):
    """Class-conditional DiT over patchified tokens; the output is the velocity (flow models)."""

    def __init__(self, cfg: dict):
        super().__init__()
        assert cfg["conditioning"] == "class_label" and cfg["positional"] == "sincos"
        self.cfg = cfg
        h = cfg["hidden"]
        c = cfg["latent_channels"]
        p = c * cfg["patch"][1] * cfg["patch"][2]
        self.x_embed = nn.Linear(p, h)
        self.t_embed = nn.ModuleDict({"fc1": nn.Linear(256, h), "fc2": nn.Linear(h, h)})
        self.y_embed = nn.ModuleDict({"table": nn.Embedding(cfg["num_classes"] + 1, h)})
        self.blocks = nn.ModuleList([Block(h, cfg["heads"], cfg["mlp_ratio"]) for _ in range(cfg["depth"])])
        self.final = nn.ModuleDict({"ada": nn.Linear(h, 2 * h), "linear": nn.Linear(h, p)})
        self.register_buffer("pos", sincos_positions(cfg), persistent=False)
        self.init_weights()

    def init_weights(self):
        """DiT's initialisation: xavier linears, N(0, 0.02) embedders, adaLN and output zeroed."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.y_embed["table"].weight, std=0.02)
        nn.init.normal_(self.t_embed["fc1"].weight, std=0.02)
        nn.init.normal_(self.t_embed["fc2"].weight, std=0.02)
        for blk in self.blocks:
            nn.init.zeros_(blk.ada.weight)
            nn.init.zeros_(blk.ada.bias)
        for name in ("ada", "linear"):
            nn.init.zeros_(self.final[name].weight)
            nn.init.zeros_(self.final[name].bias)

    def forward(self, tokens, t, labels, round_bf16=False):
        """tokens [B, N, P], t [B] in model units (sigma * 1000), labels [B] -> [B, N, P]."""
        rb = round_bf16
        f = _bf16(timestep_features(t), rb)
        temb = _bf16(self.t_embed["fc2"](_bf16(F.silu(_bf16(self.t_embed["fc1"](f), rb)), rb)), rb)
        c = temb + self.y_embed["table"](labels)
        silu_c = _bf16(F.silu(c), rb)
        x = _bf16(self.x_embed(_bf16(tokens, rb)), rb) + self.pos[None]
        for blk in self.blocks:
            x = blk(x, silu_c, rb)
        fm = _bf16(self.final["ada"](silu_c), rb)[:, None, :]
        shift, scale = fm.chunk(2, dim=-1)
        hn = _bf16(F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale) + shift, rb)
        return self.final["linear"](hn)

    def gfdit_state(self):
        """name -> tensor in gfdit's names ('y_embed.table' for the embedding's weight)."""
        out = {}
        for k, v in self.state_dict().items():
            out[k.replace("y_embed.table.weight", "y_embed.table")] = v
        return out

    def load_gfdit_state(self, tensors: dict):
        sd = {k.replace("y_embed.table", "y_embed.table.weight") if k == "y_embed.table" else k: v
              for k, v in tensors.items()}
        self.load_state_dict({k: v.float() for k, v in sd.items()})


def flow_sigma(steps: int, i: int, shift: float = 1.0) -> float:
    """sampler.cpp's flow_sigma: sigma at step i of `steps` (i == steps gives 0)."""
    t = 1.0 - i / steps
    return shift * t / (1.0 + (shift - 1.0) * t)


@torch.no_grad()
def sample(model: DiT, labels: torch.Tensor, noise: torch.Tensor, steps: int, guidance: float,
           shift: float = 1.0, round_bf16=False) -> torch.Tensor:
    """sampler.cpp's flow Euler with CFG (conditional and null-class passes) over tokens."""
    x = noise.clone()
    null = torch.full_like(labels, model.cfg["num_classes"])
    for i in range(steps):
        s, s1 = flow_sigma(steps, i, shift), flow_sigma(steps, i + 1, shift)
        t = torch.full((x.shape[0],), s * 1000.0, device=x.device)
        if guidance > 1.0:
            out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]), round_bf16)
            vc, vu = out.chunk(2)
            v = vu + guidance * (vc - vu)
        else:
            v = model(x, t, labels, round_bf16)
        x = x + (s1 - s) * v
    return x
