"""Class-conditional accuracy of pictures gfdit drew: the judging classifier (trained by
train.py on the training split) names the class of each picture; a picture counts when that is
the class it was asked for.

  gfdit generate --model fashion-dit --every-class --n 100 --out DIR/x.png   (writes DIR/x-C-K.png)
  python3 models/fashion-dit/measure.py DIR

reads every DIR/...C-K.png (asked for class C) and prints the accuracy per class and overall. Runs on the
CPU (Debian's python3-torch is enough) or a GPU.
"""
import os
import re
import sys
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fashion  # noqa: E402
from safetensors_io import load_file  # noqa: E402


def read_grey_png(path: str) -> torch.Tensor:
    """An 8-bit grey, non-interlaced PNG (what gfdit writes) -> uint8 [H, W]; stdlib only."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
            if body[8] != 8 or body[9] != 0 or body[12] != 0:
                raise ValueError(f"{path}: not an 8-bit grey non-interlaced PNG")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    out = bytearray(w * h)
    prev = bytearray(w)
    for y in range(h):
        f, line = raw[y * (w + 1)], bytearray(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a = line[x - 1] if x else 0
            b, c = prev[x], prev[x - 1] if x else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * w:(y + 1) * w] = line
        prev = line
    return torch.tensor(list(out), dtype=torch.uint8).reshape(h, w)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    clf = fashion.Classifier()
    clf.load_state_dict(load_file(os.path.join(HERE, "classifier.safetensors")))
    clf.eval()
    names = __import__("json").load(open(os.path.join(HERE, "config.json")))["class_names"]
    asked, pics = [], []
    for f in sorted(os.listdir(folder)):
        m = re.search(r"(\d+)-(\d+)\.png$", f)
        if m:
            asked.append(int(m.group(1)))
            pics.append(read_grey_png(os.path.join(folder, f)))
    if not pics:
        sys.exit(f"no C-K.png pictures in {folder}")
    with torch.no_grad():
        pred = clf(fashion.to_unit(torch.stack(pics))).argmax(1)
    asked = torch.tensor(asked)
    for c in range(10):
        sel = asked == c
        if sel.any():
            print(f"  {c} {names[c]:<12} {(pred[sel] == c).float().mean().item():.2f} of {int(sel.sum())}")
    print(f"class-conditional accuracy: {(pred == asked).float().mean().item():.4f} over {len(pics)} pictures")


if __name__ == "__main__":
    main()
