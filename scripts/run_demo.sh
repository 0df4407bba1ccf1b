#!/usr/bin/env bash
# The main job of `make run`: draws one picture of every class with the shipped fashion-dit
# (out/fashion-grid.png), then launches the default demo graph (launch/graphs/serving.yaml: the
# elastic control plane, four worker processes, a load client) once with the `static` baseline
# and once with the elastic `edf-best-fit` policy, on the same 200-request trace, and prints
# both results side by side. Usage: scripts/run_demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
gfdit="$build/launch/cli/gfdit"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Pictures first: gfdit generate on the CPU, the ten classes side by side, enlarged 4x; two
# ranks (Ulysses degree 2 as threads) use both cores of a small machine, with the same bytes.
mkdir -p out
echo "== gfdit generate --model fashion-dit --every-class --grid"
"$gfdit" generate --model fashion-dit --every-class --n 1 --seed 7 --grid --scale 4 --degree 2 \
  --out out/fashion-grid.png --quiet
echo "   (t-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot)"
echo

for policy in static edf-best-fit; do
  echo "== gfdit launch launch/graphs/serving.yaml policy:=$policy"
  "$gfdit" launch launch/graphs/serving.yaml "policy:=$policy" "json:=$out/$policy.json" 2>&1 |
    grep -v ' info ' | sed -n '/metric/,/^\[launch\]/p' | grep -v '^\[launch\]'
done

echo "== side by side (same trace, 4 simulated GPUs, 200x compressed time)"
python3 - "$out/static.json" "$out/edf-best-fit.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rows = [("requests done", lambda r: r["requests"]["done"]),
        ("goodput (req/s)", lambda r: r["goodput_rps"]),
        ("SLO attainment", lambda r: r["slo"]["attainment"]),
        ("SLO violations", lambda r: r["slo"]["violations"]),
        ("mean latency (s)", lambda r: r["latency"]["mean_s"]),
        ("p99 latency (s)", lambda r: r["latency"]["p99_s"]),
        ("GPU busy fraction", lambda r: r["gpu_busy_fraction"]),
        ("regroupings", lambda r: r["regroupings"])]
print(f"{'':22}{'static':>12}{'edf-best-fit':>14}{'ratio':>8}")
for label, get in rows:
    x, y = get(a), get(b)
    ratio = f"{y / x:8.2f}" if x else f"{'-':>8}"
    print(f"{label:22}{x:12.3f}{y:14.3f}{ratio}")
PY
