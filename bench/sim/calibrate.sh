#!/usr/bin/env bash
# The simulator against real workers (issue 23, item 3): `gfdit profile` measures fashion-dit's
# stages on the worker backend (DEVICE: cpu, or gpu with one GPU per worker), then each policy
# serves the same fashion-mix requests live (launch/graphs/serving-fashion.yaml: WORKERS workers,
# the scheduler planning on the measured profile) and in `gfdit sim` with that profile; the table
# gives the medians of RUNS live runs beside the simulator's prediction and sim/live.
#   bash bench/sim/calibrate.sh [BUILD=build]
#   env: DEVICE=cpu WORKERS=2 RUNS=3 REQUESTS=12 POLICIES="static:1 static:2 edf-best-fit"
#        GFDIT=path/to/gfdit (default BUILD/launch/cli/gfdit; a bundle's bin/gfdit elsewhere)
set -euo pipefail
BUILD=${1:-build}
DEVICE=${DEVICE:-cpu}
WORKERS=${WORKERS:-2}
RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-12}
POLICIES=${POLICIES:-"$(for d in $(seq "$WORKERS"); do printf 'static:%s ' "$d"; done)edf-best-fit"}
G=${GFDIT:-$BUILD/launch/cli/gfdit}
if [ "$DEVICE" = gpu ]; then
  MACHINE="$WORKERS x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
else
  MACHINE="$(nproc) cores"
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$G" profile --model fashion-dit=models/fashion-dit --device "$DEVICE" --degrees "$(seq -s, "$WORKERS")" --steps 5 \
  --reps 3 --machine "$MACHINE" --out "$W/profile.yaml" 2>&1 | grep "degree" >&2
for pol in $POLICIES; do
  for r in $(seq "$RUNS"); do
    mkdir -p "$W/world-$pol-$r"
    "$G" launch launch/graphs/serving-fashion.yaml world_dir:="$W/world-$pol-$r" policy:="$pol" requests:="$REQUESTS" \
      workers:="$WORKERS" backend:="$DEVICE" \
      profiles:="$W/profile.yaml" json:="$W/live-$pol-$r.json" > "$W/live-$pol-$r.log" 2>&1
  done
  "$G" sim --workload launch/workloads/fashion-mix.yaml --profiles "$W/profile.yaml" --gpus "$WORKERS" --requests "$REQUESTS" \
    --policy "$pol" --json "$W/sim-$pol.json" --quiet
done
python3 - "$W" "$RUNS" $POLICIES <<'PY'
import glob, json, statistics, sys
w, runs, policies = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
# The load client and the simulator write the same metrics (the simulator inside "runs").
metrics = [("goodput (req/s)", lambda j: j["goodput_rps"]), ("latency mean (s)", lambda j: j["latency"]["mean_s"]),
           ("queue mean (s)", lambda j: j["breakdown_mean_s"]["queue"]),
           ("run mean (s)", lambda j: j["breakdown_mean_s"]["run"]), ("busy fraction", lambda j: j["gpu_busy_fraction"]),
           ("SLO attainment", lambda j: j["slo"]["attainment"])]
print(f"{'policy':14s} {'metric':18s} {'live (median)':>14s} {'sim':>8s} {'sim/live':>9s}")
for pol in policies:
    live = [json.load(open(f)) for f in sorted(glob.glob(f"{w}/live-{pol}-*.json"))]
    sim = json.load(open(f"{w}/sim-{pol}.json"))["runs"][0]
    for label, get in metrics:
        m, s = statistics.median(get(j) for j in live), get(sim)
        print(f"{pol:14s} {label:18s} {m:14.3f} {s:8.3f} {s / m if m else float('nan'):9.2f}")
PY
