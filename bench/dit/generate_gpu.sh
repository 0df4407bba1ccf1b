#!/usr/bin/env bash
# One device call: `gfdit generate` on the GPU with the shipped fashion-dit (the grid, a timing
# beside the CPU path of the same binary, the GPU picture against the CPU picture of the same
# request), then the DiT GPU tests. Expects .bundle/gen (scripts/bundle.sh .bundle/gen
# build/launch/cli/gfdit build/tests/kernels/dit/dit_gpu_test), carried.
set -o pipefail
B=.bundle/gen
OUT=${OUT:-/tmp/gen-out}
mkdir -p "$OUT"
source "$B/env.sh"
lt=$(dirname "$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null || find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -1)")
nccl=$(python3 -c "import nvidia.nccl,os;print(list(nvidia.nccl.__path__)[0])")/lib
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$lt:/usr/local/cuda/lib64:$nccl
G="$B/bin/gfdit generate --weights models/fashion-dit --quiet"
nvidia-smi --query-gpu=name --format=csv,noheader
$G --device gpu --every-class --n 10 --grid --scale 2 --out "$OUT/gpu-grid.png"
for dev in gpu cpu; do
  s=$(date +%s.%N); $G --device $dev --class 7 --n 10 --out "$OUT/$dev.png" > /dev/null; e=$(date +%s.%N)
  echo "$dev: 10 pictures in $(echo "$e - $s" | bc) s"
done
python3 - "$OUT" <<'PY'
import sys, numpy as np
from PIL import Image
d = sys.argv[1]
for i in range(10):
    g = np.asarray(Image.open(f"{d}/gpu-{i}.png"), dtype=np.int32); c = np.asarray(Image.open(f"{d}/cpu-{i}.png"), dtype=np.int32)
    print(f"seed {i}: GPU vs CPU pixels: max |diff| {np.abs(g - c).max()}, mean {np.abs(g - c).mean():.2f}, equal {np.mean(g == c):.3f}")
PY
timeout 200 "$B/bin/dit_gpu_test" 2>&1 | tail -4
