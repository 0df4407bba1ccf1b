#!/usr/bin/env bash
# Issue 21's GPU runs in one device call: real models on the GPU against PyTorch and the CPU, and
# pictures/s of DiT-XL/2 (random weights in diffusers' layout, written here by
# models/reference/make_dit_pipeline.py) beside the PyTorch peer on the same folders.
#   bash bench/dit/generate_gpu.sh tests|bench [peer modes: eager compile]   (PX="256 512": the bench's sizes)
# Expects .bundle/gen (or .bundle/gen.tar.xz, unpacked here: the bundle is ~70 MB, past the 64 MiB
# a device call carries), made with: scripts/bundle.sh .bundle/gen build/launch/cli/gfdit \
#   build/tests/kernels/dit/{dit_models_gpu_test,dit_vae_gpu_test,dit_gpu_test} build/bench/dit/gfdit_generate_bench
# and `pwd > .bundle/gen/source_dir` (the tests read their fixtures there).
set -o pipefail
part=${1:-tests}
shift || true
modes=${*:-eager}
B=.bundle/gen
OUT=${OUT:-/tmp/gen-out}
W=${WORK:-/tmp/gfdit-pipelines}
mkdir -p "$OUT" "$W"
[ -d "$B" ] || tar xJf "$B.tar.xz" -C .bundle
source "$B/env.sh"
# The tests read fixtures at the source path they were built from ($B/source_dir): point it here.
src=$(cat "$B/source_dir" 2>/dev/null)
[ -n "$src" ] && [ ! -e "$src" ] && mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }
lt=$(dirname "$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null || find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -1)")
nccl=$(python3 -c "import nvidia.nccl,os;print(list(nvidia.nccl.__path__)[0])")/lib
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$lt:/usr/local/cuda/lib64:$nccl
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/card.txt"
pipeline() {  # DiT-XL/2 at $1 px (weights bf16, as they would be served), made once per machine
  [ -f "$W/xl$1/model_index.json" ] || python3 models/reference/make_dit_pipeline.py --out "$W/xl$1" --resolution "$1" >&2
  echo "$W/xl$1"
}
if [ "$part" = tests ]; then
  P=$(pipeline 256)
  G="$B/bin/gfdit generate --weights models/fashion-dit --quiet"
  $G --device gpu --every-class --n 10 --grid --scale 2 --out "$OUT/fashion-gpu-grid.png"
  for dev in gpu cpu; do
    s=$(date +%s.%N); $G --device $dev --class 7 --n 10 --out "/tmp/$dev.png" > /dev/null; e=$(date +%s.%N)
    echo "fashion-dit $dev: 10 pictures in $(secs "$s" "$e") s (one process, model load included)"
  done
  s=$(date +%s.%N)
  "$B/bin/gfdit" generate --weights "$P" --class 3 --steps 25 --device gpu --out "$OUT/xl256-gpu.png"
  echo "DiT-XL/2-256 (random weights) one picture with --device gpu: $(secs "$s" "$(date +%s.%N)") s"
  GFDIT_DIT_PIPELINE_DIR=$P timeout 300 "$B/bin/dit_models_gpu_test" 2>&1 | tail -25
  GFDIT_SD_VAE_DIR=$P/vae timeout 200 "$B/bin/dit_vae_gpu_test" 2>&1 | tail -15
  timeout 200 "$B/bin/dit_gpu_test" 2>&1 | tail -3
  [ -x "$B/bin/test_attention_gpu" ] && timeout 300 "$B/bin/test_attention_gpu" 2>&1 | tail -3
else
  for px in ${PX:-256 512}; do
    P=$(pipeline "$px")
    PYTHONUNBUFFERED=1 timeout 400 python3 bench/peers/peers_dit_generate.py --pipeline "$P" --batch 1 8 --modes $modes \
      | tee -a "$OUT/peer.jsonl"
    timeout 200 "$B/bin/gfdit_generate_bench" --pipeline "$P" --batch 1 8 --peer "$OUT/peer.jsonl" 2>>"$OUT/bench.jsonl" \
      | tee -a "$OUT/bench.txt"
  done
fi
