"""Writes the tiny diffusers-layout DiT fixture the C++ loader's parity test reads:

  /usr/bin/python3 models/reference/make_dit_fixture.py [--out tests/kernels/dit/fixtures/tiny-diffusers-dit]

into --out/transformer/: diffusion_pytorch_model.safetensors (F32, diffusers' tensor names),
config.json (DiTTransformer2DModel: 2 layers, 2 heads x 32, patch 2, sample_size 8, 4 channels,
10 classes, learned sigma) and reference_io.safetensors: latent [2, 4, 8, 8], timesteps [2]
(999, 37), labels [2] (3 and the null class 10), and the output [2, 8, 8, 8] in float32
(out_fp32), computed in float64 (out_f64, stored as F32: gfdit's reader has no F64) and with
gfdit's bf16 rounding emulated (out_gfdit_rounding). Deterministic (fixed seeds, CPU).
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import diffusers_dit  # noqa: E402
from safetensors_io import save_file  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "..", "tests", "kernels", "dit", "fixtures", "tiny-diffusers-dit")


def rel_rms(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref.double()).pow(2).sum() / ref.double().pow(2).sum()).sqrt().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fp32 CPU matmuls split over threads are not bitwise reproducible
    cfg = diffusers_dit.tiny_config()
    m = diffusers_dit.random_model(cfg, seed=20240611)
    tdir = diffusers_dit.save_transformer(m, args.out)

    g = torch.Generator().manual_seed(7)
    latent = torch.randn(2, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"], generator=g)
    t = torch.tensor([999.0, 37.0])
    labels = torch.tensor([3, cfg["num_embeds_ada_norm"]], dtype=torch.int64)
    ref = diffusers_dit.reference_outputs(m, latent, t, labels)
    save_file({"latent": latent, "timesteps": t, "labels": labels.to(torch.int32), **ref},
              os.path.join(tdir, "reference_io.safetensors"))

    c = cfg["in_channels"]
    eps = {k: v[:, :c] for k, v in ref.items()}
    print("written to", os.path.relpath(tdir))
    print("eps rel RMS fp32 vs f64: %.3g, gfdit-rounding vs f64: %.3g, vs fp32: %.3g" % (
        rel_rms(eps["out_fp32"], eps["out_f64"]), rel_rms(eps["out_gfdit_rounding"], eps["out_f64"]),
        rel_rms(eps["out_gfdit_rounding"], eps["out_fp32"])))
    # How much the blocks, the conditioning and each known difference move the output.
    with torch.no_grad():
        m.double()
        x64 = latent.double()
        base = m(x64, t.double(), labels)[:, :c]
        print("eps rms %.3g; label 3 -> 4 moves it by %.3g, t 999 -> 998 by %.3g" % (
            base.pow(2).mean().sqrt().item(),
            rel_rms(m(x64, t.double(), torch.tensor([4, labels[1]]))[:, :c], base),
            rel_rms(m(x64, torch.tensor([998.0, 37.0], dtype=torch.float64), labels)[:, :c], base)))
        for blk in m.transformer_blocks:
            blk.norm_eps = 1e-6
        print("MLP norm eps 1e-5 -> 1e-6 (gfdit's) moves it by %.3g" % rel_rms(m(x64, t.double(), labels)[:, :c], base))
        for blk in m.transformer_blocks:
            blk.norm_eps = cfg["norm_eps"]
        proj = diffusers_dit.timestep_proj
        diffusers_dit.timestep_proj = lambda tt, dt, rb=False: torch.cat(
            [torch.cos(tt.to(dt)[:, None] * torch.exp(-torch.log(torch.tensor(1e4, dtype=dt)) * torch.arange(128, dtype=dt) / 128)),
             torch.sin(tt.to(dt)[:, None] * torch.exp(-torch.log(torch.tensor(1e4, dtype=dt)) * torch.arange(128, dtype=dt) / 128))], 1)
        print("freq_shift 1 -> 0 (gfdit's default) moves it by %.3g" % rel_rms(m(x64, t.double(), labels)[:, :c], base))
        diffusers_dit.timestep_proj = proj
        m.float()


if __name__ == "__main__":
    main()
