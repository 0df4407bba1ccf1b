"""Writes tests/kernels/dit/fixtures/tiny-vae/: a small random-initialised SD-style VAE decoder
(config.json, diffusion_pytorch_model.safetensors in F16, as SD's fp16 files are) and
reference_io.safetensors (`latent` [1, 4, 8, 8], `image` [1, 3, 64, 64] in fp32 on the CPU,
`image_f64` computed in float64, stored as F32), for kernels/dit/vae.cpp's parity test.

    /usr/bin/python3 models/reference/make_vae_fixture.py            # the fixture
    /usr/bin/python3 models/reference/make_vae_fixture.py --sd DIR   # + an SD-size random decoder
                                                                     #   and a 4x32x32 latent in DIR
"""
import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from sd_vae import SD_CONFIG, VAEDecoder, randomize, write_random_decoder  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURE = os.path.join(ROOT, "tests", "kernels", "dit", "fixtures", "tiny-vae")

# Four up blocks (three upsamplers: 8x8 -> 64x64), a channel change (64 -> 32, so a
# conv_shortcut), two resnets per up block, 8 groups of 4 or 8 channels.
TINY_CONFIG = dict(SD_CONFIG, block_out_channels=[32, 32, 64, 64], layers_per_block=1, norm_num_groups=8,
                   sample_size=64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sd", help="also write an SD-size random decoder and a 4x32x32 latent here")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the same fp32 reference bits on any machine that runs one thread

    io = write_random_decoder(FIXTURE, TINY_CONFIG, seed=20240601, latent_hw=(8, 8), dtype=torch.float16)
    size = sum(os.path.getsize(os.path.join(FIXTURE, f)) for f in os.listdir(FIXTURE))
    diff = (io["image"].double() - io["image_f64"]).pow(2).mean().sqrt() / io["image_f64"].pow(2).mean().sqrt()
    print(f"{FIXTURE}: {size} bytes; image std {io['image'].std():.4f}, "
          f"range [{io['image'].min():.3f}, {io['image'].max():.3f}], fp32 vs f64 rel rms {diff:.3e}")

    # The SD defaults build and run with the same code.
    sd = VAEDecoder(SD_CONFIG)
    randomize(sd, 0)
    t0 = time.time()
    with torch.no_grad():
        out = sd(torch.randn(1, 4, 8, 8))
    print(f"SD-size decoder: {sum(p.numel() for p in sd.parameters())} parameters, "
          f"4x8x8 -> {list(out.shape)} in {time.time() - t0:.2f} s")

    if args.sd:
        t0 = time.time()
        write_random_decoder(args.sd, SD_CONFIG, seed=7, latent_hw=(32, 32), with_f64=False)
        print(f"{args.sd}: SD-size decoder + 4x32x32 reference in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
