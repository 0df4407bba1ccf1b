#!/usr/bin/env bash
# One device call: GPU tests, then (mode "bench") the PyTorch SDPA peers and our benchmark in the
# same run. Expects .bundle/attn (binaries, libcudart, peers_attention.py), built on the dev box:
#   bench/attention/make_bundle.sh
# Usage on the device: bash bench/attention/run_device.sh [tests|bench|all] [extra bench args]
set -u
mode=${1:-all}; shift || true
B=.bundle/attn
OUT=${OUT:-/tmp/attn_out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/$B:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader | tee "$OUT/card.txt"
if [[ $mode == tests || $mode == all || $mode == quick ]]; then
  # Both kernel families: the Hopper wgmma kernels (default here) and the portable mma.sync ones.
  for kern in default mma; do
    GFDIT_ATTN_KERNEL=$kern timeout 200 $B/test_attention_gpu --gtest_brief=1 2>&1 | tee "$OUT/tests-$kern.log" |
      grep -E "FAILED|Failure|PASSED|error|rel|Expected|Which|actual" | head -60
    echo "gpu tests ($kern kernels) rc=${PIPESTATUS[0]}"
  done
fi
if [[ $mode == quick ]]; then
  timeout 200 $B/bench_attention --json "$OUT/ours.jsonl" "$@" > "$OUT/bench.log" 2>&1
  echo "bench rc=$?"; sed -n '/summary/,$p' "$OUT/bench.log"
fi
if [[ $mode == bench || $mode == all ]]; then
  shapes=()
  for mask in full causal; do for d in 64 128; do for s in 512 1024 2048 4096 8192 16384; do
    shapes+=(--shape "$((16384 / s)),$((2048 / d)),$s,$d,$mask")
  done; done; done
  PYTHONUNBUFFERED=1 timeout 200 python3 $B/peers_attention.py --backend cudnn --backend flash2 \
    --iters 10 "${shapes[@]}" > "$OUT/peers.jsonl" 2> "$OUT/peers.err"
  echo "peers rc=$? rows=$(wc -l < "$OUT/peers.jsonl")"; head -c 600 "$OUT/peers.err"
  for rep in 1 2 3; do  # three repetitions: RESULTS.md quotes the median of each cell
    timeout 150 $B/bench_attention --peers "$OUT/peers.jsonl" --json "$OUT/ours$rep.jsonl" "$@" > "$OUT/bench$rep.log" 2>&1
    echo "bench $rep rc=$?"
  done
  sed -n '/summary/,$p' "$OUT/bench3.log"
  # The portable kernels on the same card, once, for the record.
  GFDIT_ATTN_KERNEL=mma timeout 150 $B/bench_attention --peers "$OUT/peers.jsonl" --json "$OUT/mma-ours.jsonl" "$@" > "$OUT/bench-mma.log" 2>&1
  echo "bench mma rc=$?"
fi
