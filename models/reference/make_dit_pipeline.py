"""Writes a diffusers DiTPipeline folder with random weights at a published size, the layout a
checkpoint from the Hub has (no weights can be downloaded here):

  python3 models/reference/make_dit_pipeline.py --out DIR [--size XL/2] [--resolution 256]
                                                [--dtype bf16] [--device cuda]

DIR/model_index.json (DiTPipeline, id2label "class 0".."class 999"), DIR/scheduler/ (DiT's
linear-beta DDIM schedule), DIR/transformer/ (DiTTransformer2DModel: config.json and
diffusion_pytorch_model.safetensors in --dtype) and DIR/vae/ (the SD VAE decoder, random, fp32,
with its reference_io.safetensors for a latent of the pipeline's size). Beside the transformer,
reference_io.safetensors holds a forward of the stored weights as kernels/dit's parity tests read
it (latent [2, 4, S, S], timesteps 999 and 37, labels 3 and the null class; out_fp32 with TF32
off, out_gfdit_rounding with gfdit's bf16 rounding emulated, out_f64).
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import diffusers_dit  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402
from sd_vae import SD_CONFIG, write_random_decoder  # noqa: E402

# (layers, heads) of Peebles & Xie's sizes; head_dim 72 for XL, 64 otherwise.
SIZES = {"S": (12, 6, 64), "B": (12, 12, 64), "L": (24, 16, 64), "XL": (28, 16, 72)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SCHEDULER = {"_class_name": "DDIMScheduler", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
             "num_train_timesteps": 1000, "clip_sample": False, "prediction_type": "epsilon"}


def dit_config(size: str, resolution: int) -> dict:
    name, patch = size.split("/")
    layers, heads, head_dim = SIZES[name]
    return diffusers_dit.tiny_config(num_layers=layers, num_attention_heads=heads, attention_head_dim=head_dim,
                                     patch_size=int(patch), sample_size=resolution // 8, num_embeds_ada_norm=1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="XL/2", help="S/2, B/2, L/2, XL/2 (also /4, /8)")
    ap.add_argument("--resolution", type=int, default=256, choices=(256, 512))
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 forward")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.time()
    os.makedirs(os.path.join(args.out, "scheduler"), exist_ok=True)
    with open(os.path.join(args.out, "model_index.json"), "w") as f:
        json.dump({"_class_name": "DiTPipeline", "id2label": {str(i): f"class {i}" for i in range(1000)}}, f)
    with open(os.path.join(args.out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER, f, indent=2)

    cfg = dit_config(args.size, args.resolution)
    m = diffusers_dit.random_model(cfg, seed=20241207)
    tdir = diffusers_dit.save_transformer(m, args.out, DTYPES[args.dtype])
    # The reference runs the weights as stored (rounded to --dtype), read back as float32.
    m.load_state_dict({k: v.float() for k, v in load_file(os.path.join(tdir, "diffusion_pytorch_model.safetensors")).items()})
    m = m.to(args.device)
    g = torch.Generator().manual_seed(7)
    s = cfg["sample_size"]
    latent = torch.randn(2, cfg["in_channels"], s, s, generator=g)
    t = torch.tensor([999.0, 37.0])
    labels = torch.tensor([3, cfg["num_embeds_ada_norm"]], dtype=torch.int64)
    with torch.no_grad():
        dev = lambda x: x.to(args.device)  # noqa: E731
        io = {"out_fp32": m.float()(dev(latent), dev(t), dev(labels)),
              "out_gfdit_rounding": m(dev(latent), dev(t), dev(labels), gfdit_rounding=True)}
        if not args.no_f64:
            io["out_f64"] = m.double()(dev(latent).double(), dev(t).double(), dev(labels)).float()
    io = {k: v.cpu().contiguous() for k, v in io.items()}
    save_file({"latent": latent, "timesteps": t, "labels": labels.to(torch.int32), **io},
              os.path.join(tdir, "reference_io.safetensors"))
    params = sum(p.numel() for p in m.parameters())
    print(f"DiT-{args.size} at {args.resolution} px: {params / 1e6:.1f} M parameters, {args.dtype}, written in {time.time() - t0:.1f} s")

    t0 = time.time()
    write_random_decoder(os.path.join(args.out, "vae"), SD_CONFIG, seed=7, latent_hw=(s, s), with_f64=False)
    print(f"SD VAE decoder and its {s}x{s} reference in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
