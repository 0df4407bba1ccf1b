"""Fashion-MNIST for the fashion-dit scripts: the IDX reader and the judging classifier.

The C++ reader (kernels/dit/idx.*) is the project's own; this one serves the PyTorch side.
"""
import gzip
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIRS = [os.environ.get("FASHION_MNIST_DIR", ""), ".data/fashion-mnist", "/usr/share/datasets/fashion-mnist"]


def find_data() -> str:
    for d in DATA_DIRS:
        if d and os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
            return d
    raise FileNotFoundError("Fashion-MNIST not found in " + ", ".join(d for d in DATA_DIRS if d) +
                            " (Debian: apt-get install dataset-fashion-mnist)")


def read_idx(path: str) -> torch.Tensor:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    n = 1
    for d in dims:
        n *= d
    if len(body) != n:
        raise ValueError(f"{path}: {len(body)} bytes of data, header says {n}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def load_split(split: str):
    """(images uint8 [N, 28, 28], labels int64 [N]); split is 'train' or 't10k'."""
    d = find_data()
    x = read_idx(os.path.join(d, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(d, f"{split}-labels-idx1-ubyte.gz")).long()
    return x, y


class Classifier(nn.Module):
    """A small CNN (about 93% on the test split) that judges whether a picture shows its class."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):  # x in [-1, 1], [B, 1, 28, 28]
        x = F.relu(self.c1(x))
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.max_pool2d(F.relu(self.c3(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [-1, 1] floats with a channel axis."""
    return (x_uint8.float() / 127.5 - 1.0)[:, None]
