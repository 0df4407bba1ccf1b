#!/usr/bin/env bash
# `gfdit profile` on the GPUs of a device machine: the shipped fashion-dit and DiT-XL/2 at 256 and
# 512 px (random weights in diffusers' layout, written here by models/reference/make_dit_pipeline.py),
# every Ulysses degree the machine holds, into $OUT/gpu-profile.yaml.
#   bash bench/dit/profile_gpu.sh BUNDLE [degrees, default 1,2,4,8]
# BUNDLE: scripts/bundle.sh's folder holding bin/gfdit (built with CUDA).
set -o pipefail
B=${1:?bundle folder}
degrees=${2:-1,2,4,8}
OUT=${OUT:-/tmp/profile-out}
W=${WORK:-/tmp/gfdit-pipelines}
mkdir -p "$OUT" "$W"
source "$B/env.sh"
lt=$(dirname "$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null || find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -1)")
nccl=$(python3 -c "import nvidia.nccl,os;print(list(nvidia.nccl.__path__)[0])")/lib
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$lt:/usr/local/cuda/lib64:$nccl
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
card="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$(nvidia-smi -L | wc -l)"
for px in 256 512; do
  [ -f "$W/xl$px/model_index.json" ] || python3 models/reference/make_dit_pipeline.py --out "$W/xl$px" --resolution "$px" >&2
done
"$B/bin/gfdit" profile --device gpu --degrees "$degrees" --steps 5 --reps 3 --machine "$card" \
  --model fashion-dit="$PWD/models/fashion-dit" --model dit-xl-2-256="$W/xl256" --model dit-xl-2-512="$W/xl512" \
  --out "$OUT/gpu-profile.yaml" 2>&1 | tee "$OUT/profile.log"
