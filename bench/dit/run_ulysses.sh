#!/usr/bin/env bash
# Real Ulysses step time: N processes of gfdit_dit_bench, one per GPU (a cuda-ipc World), beside
# the degree-1 step of rank 0 in the same run. Usage: run_ulysses.sh BENCH_EXE N LOG [configs...]
set -o pipefail
exe=$1 n=$2 log=$3
shift 3
configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(mmdit-12b-standin video-dit-5b-standin)
dir=$(mktemp -d /tmp/dit-ulysses.XXXXXX)
pids=()
for ((r = 0; r < n; r++)); do
  timeout 300 "$exe" --ulysses-rank $r --ulysses-size "$n" --ulysses-dir "$dir" --configs "${configs[@]}" --step-iters 5 \
    > "$log.rank$r" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
cat "$log".rank* | tee "$log"
rm -rf "$dir"
exit $rc
