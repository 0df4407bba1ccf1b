#!/usr/bin/env python3
"""Median of repeated bench_attention runs (ours*.jsonl) beside the peers (peers.jsonl), as a
Markdown table for bench/RESULTS.md.  usage: summarize.py DIR"""
import glob, json, statistics, sys

d = sys.argv[1]
rows = {}
for path in sorted(glob.glob(f"{d}/ours*.jsonl")):
    for line in open(path):
        j = json.loads(line)
        key = (j["mask"], j["D"], j["S"])
        r = rows.setdefault(key, {"B": j["B"], "H": j["H"], "fwd": [], "bwd": {}})
        r["fwd"].append(j["fwd_tflops"])
        for s, v in j["bwd_tflops"].items():
            r["bwd"].setdefault(s, []).append(v)
peers = {}
try:
    for line in open(f"{d}/peers.jsonl"):
        j = json.loads(line)
        if "backend" in j and "bwd_tflops" in j:
            peers[(j["mask"], j["D"], j["S"], j["backend"])] = j
except FileNotFoundError:  # the bench copies the peers' figures into its own rows
    for path in sorted(glob.glob(f"{d}/ours*.jsonl"))[:1]:
        for line in open(path):
            j = json.loads(line)
            k = (j["mask"], j["D"], j["S"])
            peers[k + ("cudnn",)] = {"fwd_tflops": j["cudnn_fwd"], "bwd_tflops": j["cudnn_bwd"]}
            peers[k + ("flash2",)] = {"fwd_tflops": j["fa2_fwd"], "bwd_tflops": j["fa2_bwd"]}
med = statistics.median
print("| mask | D | S | B×H | fwd | cuDNN fwd | FA2 fwd | asc | desc | shift | spt | atomic | best det | cuDNN bwd | FA2 bwd | best/cuDNN | best/FA2 | desc/asc | fwd/cuDNN |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(rows, key=lambda k: (k[0] != "full", k[1], k[2])):
    r = rows[key]
    b = {s: med(v) for s, v in r["bwd"].items()}
    det = {s: v for s, v in b.items() if s != "atomic"}
    best = max(det, key=det.get)
    c = peers.get(key + ("cudnn",), {})
    f = peers.get(key + ("flash2",), {})
    fwd = med(r["fwd"])
    g = lambda x: f"{x:.0f}" if x else "-"
    print(f"| {key[0]} | {key[1]} | {key[2]} | {r['B']}×{r['H']} | {fwd:.0f} | {g(c.get('fwd_tflops'))} | {g(f.get('fwd_tflops'))} | "
          f"{b['ascending']:.0f} | {b['descending']:.0f} | {g(b.get('shift'))} | {b['spt']:.0f} | {b['atomic']:.0f} | "
          f"{best} {det[best]:.0f} | {g(c.get('bwd_tflops'))} | {g(f.get('bwd_tflops'))} | "
          f"{det[best] / c['bwd_tflops']:.2f} | {det[best] / f['bwd_tflops']:.2f} | {b['descending'] / b['ascending']:.2f} | "
          f"{fwd / c['fwd_tflops']:.2f} |")
