#!/usr/bin/env bash
# Runs the libFuzzer targets, each for SECONDS (default 60), on a copy of its seed corpus, so a
# run never writes into the repository. Configures and builds build-fuzz/ (clang-14, ASan +
# UBSan) when needed. A crash leaves its reproducer in build-fuzz/crashes/<target>/ and makes the
# script exit 1.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      e.g. fuzz/run.sh 300 fuzz_bag_reader
#
# Environment: GFDIT_FUZZ_BUILD (build folder, default build-fuzz), JOBS (default 2).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${GFDIT_FUZZ_BUILD:-$ROOT/build-fuzz}
JOBS=${JOBS:-2}
SECONDS_EACH=${1:-60}
shift || true

# Target and the largest input it tries: a little above its largest real seed.
declare -A MAX_LEN=(
  [fuzz_message_decode]=4096
  [fuzz_envelope]=4096
  [fuzz_bag_reader]=16384
  [fuzz_safetensors]=16384
  [fuzz_launch_file]=8192
  [fuzz_http_request]=4096
)
ALL=(fuzz_message_decode fuzz_envelope fuzz_bag_reader fuzz_safetensors fuzz_launch_file fuzz_http_request)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [ -n "${MAX_LEN[$t]:-}" ] || { echo "run.sh: unknown target '$t' (known: ${ALL[*]})" >&2; exit 2; }
done

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGFDIT_FUZZ=ON -DGFDIT_CUDA=OFF
fi
build_start=$(date +%s)
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
echo "build: $(( $(date +%s) - build_start )) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rows=()
failed=0
for t in "${TARGETS[@]}"; do
  work=$BUILD/fuzz-runs/$t
  crashes=$BUILD/crashes/$t
  rm -rf "$work"
  mkdir -p "$work/tmp" "$crashes"
  cp -r "$ROOT/fuzz/corpus/$t" "$work/corpus"
  before=$(find "$crashes" -type f | wc -l)
  start=$(date +%s)
  status=0
  # TMPDIR: where the targets that read a path write their input (fuzz_support.hpp).
  TMPDIR=$work/tmp "$BUILD/fuzz/$t" "$work/corpus" -max_total_time="$SECONDS_EACH" \
    -max_len="${MAX_LEN[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" > "$work/log" 2>&1 || status=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  found=$(( $(find "$crashes" -type f | wc -l) - before ))
  rows+=("$(printf '%-22s %8s %12s %8s %6s' "$t" "$took" "${execs:-?}" "$found" "$status")")
  if [ "$status" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed=1
    echo "== $t failed (exit $status); the end of its log ($work/log):" >&2
    tail -40 "$work/log" >&2
  fi
done

printf '%-22s %8s %12s %8s %6s\n' target seconds executions crashes exit
printf '%s\n' "${rows[@]}"
[ "$failed" -eq 0 ] || echo "reproducers: $BUILD/crashes/ (see fuzz/README.md)" >&2
exit "$failed"
