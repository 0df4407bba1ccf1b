"""Two builds of gfdit on one GPU, in one run: is the new one as fast as the old? (a refactor's
"no slower" check, beside the peer ratios the benchmarks print themselves).

  python3 bench/compare_builds.py --old OLD_BUNDLE --new NEW_BUNDLE [--rounds 3]

Each bundle is scripts/bundle.sh's folder (bin/bench_attention, bin/gfdit_dit_bench, lib/).
The builds run alternately, the order swapped every round, and the table gives each figure's
median over the rounds and new/old: attention TFLOP/s (forward, each backward schedule) at
d64/d128, 4k and 8k, full and causal; DiT block and step milliseconds (CUDA graph replay).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ATTN_ARGS = ["--seqlen", "4096", "8192", "--dim", "64", "128", "--mask", "full", "causal"]
DIT_CONFIGS = ["dit-xl-2-256", "dit-xl-2-512", "mmdit-12b-standin"]


def run(bundle, args, timeout):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(bundle, "lib") + ":" + env.get("LD_LIBRARY_PATH", "")
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def attention(bundle, figures):
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        r = run(bundle, [os.path.join(bundle, "bin", "bench_attention"), "--json", f.name] + ATTN_ARGS, 300)
        if r.returncode != 0:
            sys.exit(f"bench_attention ({bundle}) failed: {r.stderr[-2000:]}")
        for line in open(f.name):
            j = json.loads(line)
            key = f"attn {j['mask']:6s} d{j['D']} S={j['S']}"
            figures.setdefault(f"{key} fwd TFLOP/s", []).append(j["fwd_tflops"])
            for sched, tf in j["bwd_tflops"].items():
                figures.setdefault(f"{key} bwd {sched} TFLOP/s", []).append(tf)


def dit(bundle, figures):
    prof = tempfile.mktemp(suffix=".yaml")
    r = run(bundle, [os.path.join(bundle, "bin", "gfdit_dit_bench"), "--profile", prof, "--configs"] + DIT_CONFIGS, 300)
    if r.returncode != 0:
        sys.exit(f"gfdit_dit_bench ({bundle}) failed: {r.stderr[-2000:]}")
    for line in r.stdout.splitlines():
        if line.startswith("JSON "):
            j = json.loads(line[5:])
            figures.setdefault(f"dit {j['config']} block ms", []).append(j["block_graph_ms"])
            figures.setdefault(f"dit {j['config']} step ms", []).append(j["step_graph_ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the medians here")
    a = ap.parse_args()
    figs = {"old": {}, "new": {}}
    for rnd in range(a.rounds):
        order = [("old", a.old), ("new", a.new)]
        if rnd % 2:
            order.reverse()
        for name, bundle in order:
            attention(bundle, figs[name])
            dit(bundle, figs[name])
            print(f"round {rnd + 1}: {name} done", file=sys.stderr, flush=True)
    rows = []
    print(f"{'figure':48s} {'old':>10s} {'new':>10s} {'new/old':>8s}  (medians of {a.rounds})")
    for key in sorted(figs["new"]):
        if key not in figs["old"]:
            continue
        o, n = statistics.median(figs["old"][key]), statistics.median(figs["new"][key])
        print(f"{key:48s} {o:10.3f} {n:10.3f} {n / o if o else 0:8.3f}")
        rows.append({"figure": key, "old": o, "new": n, "rounds": a.rounds})
    # One line a kind: TFLOP/s higher is better, ms lower is better.
    for unit, better in (("TFLOP/s", 1), ("ms", -1)):
        r = [x["new"] / x["old"] for x in rows if x["figure"].endswith(unit) and x["old"] > 0]
        if r:
            print(f"{unit}: new/old median {statistics.median(r):.3f}, min {min(r):.3f}, max {max(r):.3f}"
                  f" ({'higher' if better > 0 else 'lower'} is better)")
    if a.json:
        with open(a.json, "w") as f:
            for x in rows:
                f.write(json.dumps(x) + "\n")


if __name__ == "__main__":
    main()
