"""The PyTorch peer of bench/dit's generate benchmark: a diffusers DiTPipeline folder (as
models/reference/make_dit_pipeline.py writes it) run end to end on one GPU the way DiTPipeline
does it: DDIM (leading spacing, eta 0) with classifier-free guidance as one batch of 2N, the
transformer's epsilon half, then the SD VAE decoder and 8-bit pixels. The modules are the
references in models/reference (diffusers' architecture and names), attention through
F.scaled_dot_product_attention as diffusers runs it, weights and activations in --dtype.

  python3 bench/peers/peers_dit_generate.py --pipeline DIR [--batch 1 8] [--steps 25] [--modes eager compile]

Prints one JSON line per (mode, batch): images/s from the median of --reps timed runs (after a
warm-up run; under torch.compile the warm-up also compiles, and its time is printed apart).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "reference"))
import diffusers_dit  # noqa: E402
from safetensors_io import load_file  # noqa: E402
from sd_vae import load_decoder  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def alphas_cumprod():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0)


def make_generate(dit, vae, cfg, steps, guidance, dtype):
    ac = alphas_cumprod()
    ts = [(steps - 1 - i) * (1000 // steps) for i in range(steps)]
    c = cfg["in_channels"]
    null = cfg["num_embeds_ada_norm"]

    @torch.no_grad()
    def generate(noise, labels):
        x = noise
        n = x.shape[0]
        lab = torch.cat([labels, torch.full_like(labels, null)])
        for i, t in enumerate(ts):
            a = ac[t].item()
            ap = ac[ts[i + 1]].item() if i + 1 < steps else 1.0
            tt = torch.full((2 * n,), float(t), device=x.device)
            out = dit(torch.cat([x, x]).to(dtype), tt, lab)[:, :c].float()
            cond, uncond = out[:n], out[n:]
            eps = uncond + guidance * (cond - uncond)
            x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
            x = ap ** 0.5 * x0 + (1 - ap) ** 0.5 * eps
        img = vae(x.to(dtype)).float()
        return ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()

    return generate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compile"],
                    help="eager modules, and/or both modules under torch.compile (default mode)")
    args = ap.parse_args()
    dtype = DTYPES[args.dtype]
    diffusers_dit.SDPA = True
    tdir = os.path.join(args.pipeline, "transformer")
    with open(os.path.join(tdir, "config.json")) as f:
        cfg = json.load(f)
    dit = diffusers_dit.DiTTransformer2DModel(cfg)
    dit.load_state_dict(load_file(os.path.join(tdir, "diffusion_pytorch_model.safetensors")))
    dit = dit.to("cuda", dtype).eval()
    vae = load_decoder(os.path.join(args.pipeline, "vae")).to("cuda", dtype).eval()
    s = cfg["sample_size"]
    modes = [(m, dit, vae) if m == "eager" else (m, torch.compile(dit), torch.compile(vae)) for m in args.modes]
    for mode, d, v in modes:
        gen = make_generate(d, v, cfg, args.steps, args.guidance, dtype)
        for n in args.batch:
            g = torch.Generator(device="cuda").manual_seed(0)
            noise = torch.randn(n, cfg["in_channels"], s, s, device="cuda", generator=g)
            labels = torch.arange(n, device="cuda") % cfg["num_embeds_ada_norm"]
            t0 = time.perf_counter()
            gen(noise, labels)  # warm-up (and compilation)
            warm = time.perf_counter() - t0
            times = []
            for _ in range(args.reps):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                gen(noise, labels)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(json.dumps({"peer": "pytorch-" + mode, "resolution": s * 8, "batch": n, "steps": args.steps,
                              "dtype": args.dtype, "s_per_batch": round(med, 5), "images_per_s": round(n / med, 4),
                              "warmup_s": round(warm, 2), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
