"""Trains fashion-dit (a class-conditional pixel-space DiT, rectified flow) and the classifier
that judges it, deterministically, and exports both in the layouts gfdit loads.

  python3 models/fashion-dit/train.py --out models/fashion-dit [--steps 12000]

Writes into --out: model.safetensors (bf16, gfdit's tensor names and config metadata),
classifier.safetensors (fp32), reference_io.safetensors (inputs and the PyTorch output of the
exported weights, for the C++ parity test) and reference-grid.png (the PyTorch sampler's
pictures), and prints the classifier's test accuracy and the reference sampler's
class-conditional accuracy on 1,000 pictures.
"""
import argparse
import contextlib
import json
import os
import sys
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fashion  # noqa: E402
import gfdit_dit  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402


def deterministic(seed: int):
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def train_classifier(dev, xtr, ytr, xte, yte, epochs=4, batch=256):
    deterministic(1)
    net = fashion.Classifier().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator(device="cpu").manual_seed(1)
    for ep in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        net.train()
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch].to(dev)
            loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = sum((net(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                  for i in range(0, len(xte), 1000)) / len(xte)
    return net, acc


def train_dit(cfg, dev, xtr, ytr, steps, batch, lr, max_minutes=0.0, stop_at=0, log_every=1000):
    deterministic(0)
    model = gfdit_dit.DiT(cfg).to(dev)
    ema = gfdit_dit.DiT(cfg).to(dev)
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    g = torch.Generator(device=dev).manual_seed(0)
    ncls = cfg["num_classes"]
    ema_p, model_p = list(ema.parameters()), list(model.parameters())
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(xtr), (batch,), device=dev, generator=g)
        x0 = gfdit_dit.patchify(cfg, xtr[idx])
        y = ytr[idx]
        drop = torch.rand(batch, device=dev, generator=g) < 0.1  # CFG: the null class 10% of the time
        y = torch.where(drop, torch.full_like(y, ncls), y)
        sigma = torch.sigmoid(torch.randn(batch, device=dev, generator=g))  # logit-normal (SD3)
        noise = torch.randn(x0.shape, device=dev, generator=g)
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        for pg in opt.param_groups:  # linear warm-up, then cosine to a tenth
            w = min(1.0, (step + 1) / 500)
            pg["lr"] = lr * w * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(step / steps * 3.14159265)).item()))
        with torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext():
            v = model(xt, sigma * 1000.0, y)
        loss = F.mse_loss(v.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(0.9995, (1 + step) / (10 + step))
            torch._foreach_mul_(ema_p, d)
            torch._foreach_add_(ema_p, model_p, alpha=1 - d)
        if (step + 1) % log_every == 0 or step == 0:
            print(f"  dit step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
            # A lease has a time limit: stop at a logged step; the schedule stays that of --steps,
            # so `--steps S --stop-at N` repeats the run exactly.
            if max_minutes > 0 and time.time() - t0 > max_minutes * 60 and step + 1 < steps:
                print(f"  stopped at step {step + 1} (--max-minutes {max_minutes}); "
                      f"to repeat: --steps {steps} --stop-at {step + 1}", flush=True)
                break
        if stop_at and step + 1 == stop_at:
            break
    return ema


def save_gfdit(model, cfg, path):
    tensors = {k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in model.gfdit_state().items()}
    save_file(tensors, path, metadata={"format": "pt", "gfdit.config": gfdit_dit.config_json(cfg)})


def to_png_grid(pixels_uint8, rows, cols, path):
    from PIL import Image
    h, w = pixels_uint8.shape[-2:]
    grid = torch.zeros(rows * h, cols * w, dtype=torch.uint8)
    for r in range(rows):
        for c in range(cols):
            grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = pixels_uint8[r * cols + c]
    Image.fromarray(grid.numpy()).resize((cols * w * 2, rows * h * 2), Image.NEAREST).save(path)


def to_uint8(x):
    """gfdit's decode for pixel models: clamp to [-1, 1], then round((x + 1) * 127.5)."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--clf-epochs", type=int, default=4)
    ap.add_argument("--stop-at", type=int, default=0, help="end after this step, keeping --steps' schedule")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="stop training at the first log past this (0: never)")
    ap.add_argument("--per-class", type=int, default=100, help="reference-sampler pictures per class")
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(HERE, "config.json")))
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}")

    xtr8, ytr = fashion.load_split("train")
    xte8, yte = fashion.load_split("t10k")
    xtr, xte = fashion.to_unit(xtr8).to(dev), fashion.to_unit(xte8).to(dev)
    ytr, yte = ytr.to(dev), yte.to(dev)

    t0 = time.time()
    clf, clf_acc = train_classifier(dev, xtr, ytr, xte, yte, epochs=args.clf_epochs)
    print(f"classifier: test-split accuracy {clf_acc:.4f} ({time.time() - t0:.0f} s)")
    save_file({k: v.detach().cpu().contiguous() for k, v in clf.state_dict().items()},
              os.path.join(args.out, "classifier.safetensors"))

    t0 = time.time()
    n_params = sum(p.numel() for p in gfdit_dit.DiT(cfg).parameters())
    print(f"fashion-dit: {n_params} parameters, {args.steps} steps of {args.batch}")
    ema = train_dit(cfg, dev, xtr, ytr, args.steps, args.batch, args.lr, args.max_minutes, args.stop_at)
    print(f"trained in {time.time() - t0:.0f} s")
    wpath = os.path.join(args.out, "model.safetensors")
    save_gfdit(ema, cfg, wpath)

    # The exported (bf16) weights, back in fp32 on the CPU: what gfdit runs.
    ref = gfdit_dit.DiT(cfg)
    ref.load_gfdit_state(load_file(wpath))
    ref.eval()
    torch.use_deterministic_algorithms(False)
    gen = torch.Generator().manual_seed(123)
    tokens = torch.randn(2, 49, 16, generator=gen)
    t = torch.tensor([700.0, 250.0])
    labels = torch.tensor([3, cfg["num_classes"]])
    with torch.no_grad():
        out_rb = ref(tokens, t, labels, round_bf16=True)
        out_fp = ref(tokens, t, labels, round_bf16=False)
    save_file({"tokens": tokens, "timesteps": t, "labels": labels.to(torch.int32), "out_bf16_rounding": out_rb,
               "out_fp32": out_fp}, os.path.join(args.out, "reference_io.safetensors"))

    # The reference sampler's class-conditional accuracy (100 pictures a class).
    ref_dev = gfdit_dit.DiT(cfg).to(dev)
    ref_dev.load_gfdit_state(load_file(wpath))
    ref_dev.eval()
    k = args.per_class
    labels = torch.arange(10, device=dev).repeat_interleave(k)
    noise = torch.randn(10 * k, 49, 16, generator=torch.Generator(device=dev).manual_seed(7), device=dev)
    img = gfdit_dit.unpatchify(cfg, gfdit_dit.sample(ref_dev, labels, noise, cfg["default_steps"],
                                                      cfg["default_guidance"]))
    px = to_uint8(img)
    with torch.no_grad():
        pred = clf(fashion.to_unit(px[:, 0])).argmax(1)
    acc = (pred == labels).float().mean().item()
    per = [(pred[labels == c] == c).float().mean().item() for c in range(10)]
    print(f"reference sampler ({cfg['default_steps']} steps, CFG {cfg['default_guidance']}, {10 * k} pictures): "
          f"class-conditional accuracy {acc:.4f}; per class " + " ".join(f"{a:.2f}" for a in per))
    cols = min(k, 10)
    to_png_grid(px[:, 0].reshape(10, k, 28, 28)[:, :cols].reshape(10 * cols, 28, 28).cpu(), 10, cols,
                os.path.join(args.out, "reference-grid.png"))


if __name__ == "__main__":
    main()
