#!/usr/bin/env bash
# The serving acceptance table: static vs edf-best-fit on the shipped mixes at 8 and 64 GPUs.
# Prints goodput, sustainable load (sweep at >= 90% SLO attainment), mean latency and SLO
# violations side by side, with the elastic/static ratio. "cap1" caps the elastic policy's
# sustainable load at 1.0 (the cluster's single-GPU capacity): above it a backlog grows, which a
# finite trace can hide in long deadlines. Usage: acceptance.sh [build-dir] [sweep-requests]
set -euo pipefail
BUILD=${1:-build-cp}
SWEEP_REQUESTS=${2:-2000}
SIM=$BUILD/actors/sim/gfdit-sim
OUT=${OUT:-/tmp/gfdit-sim-acceptance}
mkdir -p "$OUT"
for w in video-mix image-mix bursty-mix; do
  for n in 8 64; do
    "$SIM" --workload launch/workloads/$w.yaml --gpus $n --compare static,edf-best-fit \
      --sweep --sweep-requests $SWEEP_REQUESTS --quiet --json "$OUT/$w-$n.json"
  done
done
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
print(f"{'workload':<11} {'GPUs':>4} | {'goodput req/s':>22} | {'sustainable load':>27} | {'mean latency s':>20} | {'SLO violations':>16}")
print(f"{'':<11} {'':>4} | {'static':>7} {'edf':>7} {'ratio':>6} | {'static':>6} {'edf':>6} {'ratio':>6} {'cap1':>6} | {'static':>6} {'edf':>6} {'change':>6} | {'static':>5} {'edf':>4} {'chg':>5}")
for w in ["video-mix", "image-mix", "bursty-mix"]:
    for n in [8, 64]:
        j = json.load(open(os.path.join(out, f"{w}-{n}.json")))
        s, e = j["runs"]
        ss, se = j["sweep"]
        r = lambda a, b: f"{b/a:.2f}x" if a else "inf"
        c = lambda a, b: f"{(b-a)/a*100:+.0f}%" if a else ("0%" if b == 0 else "+inf")
        print(f"{w:<11} {n:>4} | {s['goodput_rps']:>7.4f} {e['goodput_rps']:>7.4f} {r(s['goodput_rps'], e['goodput_rps']):>6} | "
              f"{ss['sustainable_load']:>6.3f} {se['sustainable_load']:>6.3f} {r(ss['sustainable_load'], se['sustainable_load']):>6} {r(ss['sustainable_load'], min(1.0, se['sustainable_load'])):>6} | "
              f"{s['latency']['mean_s']:>6.1f} {e['latency']['mean_s']:>6.1f} {c(s['latency']['mean_s'], e['latency']['mean_s']):>6} | "
              f"{s['slo']['violations']:>5} {e['slo']['violations']:>4} {c(s['slo']['violations'], e['slo']['violations']):>5}")
PY
