#!/usr/bin/env bash
# The main job of `make run`: serves the shipped fashion-dit checkpoint over HTTP
# (launch/graphs/serving-http.yaml: the elastic control plane, two worker processes, the
# OpenAI-style gateway), draws one picture of every class through the Python client
# (examples/python/generate.py) into out/fashion-grid.png, then launches the default demo graph
# (launch/graphs/serving.yaml: four simulated GPUs and a load client) once with the `static`
# baseline and once with the elastic `edf-best-fit` policy on the same 200-request trace, and
# prints both side by side. Usage: scripts/run_demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
gfdit="$build/launch/cli/gfdit"
out=$(mktemp -d)
graph=""
cleanup() {
  if [ -n "$graph" ]; then kill -INT "$graph" 2>/dev/null || true; wait "$graph" 2>/dev/null || true; fi
  rm -rf "$out"
}
trap cleanup EXIT

# GPU workers where a GPU is present (and the build has CUDA), else CPU workers.
backend=cpu
if "$gfdit" generate --model fashion-dit --device gpu --steps 1 --out "$out/probe.png" --quiet >/dev/null 2>&1; then
  backend=gpu
fi
workers=2
[ "$backend" = gpu ] && workers=$(nvidia-smi -L 2>/dev/null | wc -l)
echo "== gfdit launch launch/graphs/serving-http.yaml backend:=$backend workers:=$workers (fashion-dit over HTTP)"
mkdir -p "$out/world" out
"$gfdit" launch launch/graphs/serving-http.yaml listen:=127.0.0.1:0 "port_file:=$out/port" \
  "world_dir:=$out/world" "backend:=$backend" "workers:=$workers" > "$out/graph.log" 2>&1 &
graph=$!
url=""
for _ in $(seq 1 600); do
  if [ -s "$out/port" ] && python3 -c 'import sys, urllib.request; sys.exit(b"fashion-dit" not in urllib.request.urlopen(sys.argv[1], timeout=2).read())' \
       "http://127.0.0.1:$(cat "$out/port")/v1/models" 2>/dev/null; then
    url="http://127.0.0.1:$(cat "$out/port")"
    break
  fi
  kill -0 "$graph" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "the HTTP graph did not come up; its log:" >&2
  tail -30 "$out/graph.log" >&2
  exit 1
fi
echo "   serving on $url; four pictures of every class through the Python client (examples/python/generate.py)"
python3 examples/python/generate.py --url "$url" --every-class --n 4 --seed 7 --out "$out/pictures" \
  --grid out/fashion-grid.png --scale 4 > "$out/client.log" 2>&1 || { cat "$out/client.log" >&2; exit 1; }
echo "   wrote $(pwd)/out/fashion-grid.png: $(ls "$out/pictures" | wc -l) pictures, a row per class (t-shirt/top,"
echo "   trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot), seeds 7-10"
kill -INT "$graph"
wait "$graph" 2>/dev/null || true
graph=""
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
