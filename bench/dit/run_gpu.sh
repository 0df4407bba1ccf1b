#!/usr/bin/env bash
# One device call: GPU tests, the PyTorch peer and gfdit_dit_bench, logs under $OUT.
# Expects .bundle/dit/ (carried) with dit_gpu_test, dit_kernels_gpu_test, gfdit_dit_worker (its real-Ulysses test),
# gfdit_dit_bench, peers_dit_block.py and run_ulysses.sh.
set -o pipefail
B=.bundle/dit
OUT=${OUT:-/tmp/dit-out}
mkdir -p "$OUT"
lt=$(dirname "$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null || find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -1)")
nccl=$(python3 -c "import nvidia.nccl,os;print(list(nvidia.nccl.__path__)[0])")/lib
export LD_LIBRARY_PATH=$lt:/usr/local/cuda/lib64:$nccl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/card.txt"
"$B/dit_gpu_test" 2>&1 | tee "$OUT/gpu_test.log"
"$B/dit_kernels_gpu_test" 2>&1 | tee -a "$OUT/gpu_test.log"
PEER=$B/peers_dit_block.py; [ -f "$PEER" ] || PEER=bench/peers/peers_dit_block.py  # the repo copy when not bundled
PYTHONUNBUFFERED=1 timeout 150 python3 "$PEER" --config 384,6,256 --config 1152,16,256 \
  --config 1152,16,1024 --config 3072,24,4608 --config 3072,24,5582 --config 3072,24,18992 | tee "$OUT/peer.jsonl"
timeout 200 "$B/gfdit_dit_bench" --peer "$OUT/peer.jsonl" --profile "$OUT/dit-measured.yaml" "$@" 2>&1 | tee "$OUT/bench.log"
# With 2 or more GPUs: the real degree-2 step (2 processes) beside degree 1 (bench/dit/run_ulysses.sh).
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  bash "$B/run_ulysses.sh" "$B/gfdit_dit_bench" 2 "$OUT/ulysses.log"
fi
