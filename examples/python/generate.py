#!/usr/bin/env python3
"""Pictures from a running gfdit gateway, through the Python client (clients/python).

  python3 examples/python/generate.py --prompt sneaker --n 4 --seed 7 --out out/
  python3 examples/python/generate.py --every-class --steps 8 --grid out/every-class.png
  python3 examples/python/generate.py --prompt "ankle boot" --stream --out out/

Works from a checkout without `pip install clients/python`.
"""

import argparse
import os
import re
import sys

try:
    import gfdit_client
except ImportError:  # not installed: use the copy in this checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "clients", "python"))
    import gfdit_client

from gfdit_client import png


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "image"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("GFDIT_URL", gfdit_client.DEFAULT_BASE_URL),
                   help="gateway base URL (default $GFDIT_URL or %(default)s)")
    p.add_argument("--model", default="fashion-dit", help="model id (default %(default)s)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", action="append",
                      help="prompt (a class name for class-conditional models); repeatable")
    what.add_argument("--every-class", action="store_true",
                      help="one prompt per class, the classes listed by /v1/models")
    p.add_argument("--n", type=int, default=1, help="images per prompt, 1-8 (default 1)")
    p.add_argument("--seed", type=int, help="seed of image 0 (image i uses seed+i); server picks if unset")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    p.add_argument("--size", help="WxH (default: the model's native size)")
    p.add_argument("--slo-ms", type=float, help="latency target in ms passed to the scheduler")
    p.add_argument("--format", choices=("b64_json", "url"), default="b64_json",
                   help="how the server returns images (default %(default)s)")
    p.add_argument("--stream", action="store_true", help="stream and print progress")
    p.add_argument("--out", help="folder for one PNG per image (<class-slug>-<seed>.png)")
    p.add_argument("--grid", help="also write one PNG sheet: a row per prompt, --n columns")
    p.add_argument("--scale", type=int, default=4, help="grid enlargement (default %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per HTTP call")
    args = p.parse_args(argv)
    if not args.out and not args.grid:
        p.error("nothing to write: give --out DIR and/or --grid FILE")
    if args.n < 1:
        p.error("--n must be >= 1")
    if args.scale < 1:
        p.error("--scale must be >= 1")
    return args


def classes_of(client, model):
    for m in client.models():
        if m.get("id") == model:
            classes = m.get("classes") or []
            if not classes:
                raise SystemExit("error: model %s lists no classes: --every-class needs them" % model)
            return list(classes)
    raise SystemExit("error: the server has no model %r" % model)


def run_one(client, args, prompt):
    """Returns the reply's items (dicts with "image": PNG bytes and any seed/class keys)."""
    kw = dict(model=args.model, n=args.n, size=args.size, seed=args.seed, steps=args.steps,
              guidance=args.guidance, slo_ms=args.slo_ms, response_format=args.format)
    if not args.stream:
        return client.generate_detailed(prompt, **kw)
    for event in client.generate_stream(prompt, **kw):
        if event.get("type") == "image_generation.progress":
            print("%s: image %d/%d step %s/%s" % (prompt, event.get("index", 0) + 1, args.n,
                                                  event.get("step"), event.get("total")),
                  flush=True)
        elif "images" in event:
            items = [dict(item) for item in event.get("data", [])]
            for item, image in zip(items, event["images"]):
                item["image"] = image
            return items
    return []


def main(argv=None):
    args = parse_args(argv)
    client = gfdit_client.Client(args.url, timeout=args.timeout)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    written = set()
    rows = []
    try:
        prompts = classes_of(client, args.model) if args.every_class else args.prompt
        for prompt in prompts:
            items = run_one(client, args, prompt)
            if len(items) != args.n:
                raise SystemExit("error: asked %d images of %r, got %d" % (args.n, prompt, len(items)))
            try:
                rows.append([png.read_png(item["image"]) for item in items])
            except ValueError as e:
                raise SystemExit("error: the server sent a picture of %r that is not a PNG this "
                                 "client reads: %s" % (prompt, e))
            if not args.out:
                continue
            for i, item in enumerate(items):
                seed = item.get("seed", args.seed + i if args.seed is not None else None)
                stem = "%s-%s" % (slug(str(item.get("class") or prompt)),
                                  seed if seed is not None else "i%d" % i)
                path, k = os.path.join(args.out, stem + ".png"), 2
                while path in written:  # a prompt given twice must not overwrite its pictures
                    path, k = os.path.join(args.out, "%s-%d.png" % (stem, k)), k + 1
                written.add(path)
                with open(path, "wb") as f:
                    f.write(item["image"])
                print(path, flush=True)
    except gfdit_client.GfditError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if args.grid:
        sheet = png.grid([im for row in rows for im in row], cols=args.n, scale=args.scale)
        parent = os.path.dirname(args.grid)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(args.grid, "wb") as f:
            f.write(png.write_png(*sheet))
        print(args.grid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
