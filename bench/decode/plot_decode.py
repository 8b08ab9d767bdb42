#!/usr/bin/env python3
"""Bar plot of bench_decode.py's JSON: K+V GB/s per shape and backend.

Usage: python3 bench/decode/plot_decode.py bench/results/decode_h200.json
writes decode_h200.png beside the JSON (needs matplotlib only, no GPU).
"""
import json
import os
import sys


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["rows"]
    labels = [f"{r['hq']}/{r['hkv']}\nB{r['B']} S{r['S'] // 1024}K" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(14, 5))
    series = [("kvcc_p16", "kvcc paged p16"), ("kvcc_p64", "kvcc paged p64"), ("kvcc_api_p16", "kvcc API p16"),
              ("cudnn", "SDPA cuDNN"), ("flash", "SDPA flash")]
    if any(r.get("flashinfer_GBps") for r in rows):
        series.append(("flashinfer", "FlashInfer (fastest)"))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        ax.bar([xi + (i - (len(series) - 1) / 2) * width for xi in x],
               [r.get(f"{key}_GBps") or 0 for r in rows], width, label=label)
    if result.get("read_GBps"):
        ax.axhline(result["read_GBps"], color="k", ls="-", lw=1,
                   label="device read (kvcc_bench_read)")
    ax.axhline(result["copy_GBps_rw"], color="k", ls="--", lw=1,
               label="device copy (r+w)")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("K+V GB/s")
    ax.set_title(f"Decode attention, fp16 d128, {result['device']}")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # room for the legend above the bars
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)



if __name__ == "__main__":
    source = sys.argv[1]
    with open(source) as f:
        data = json.load(f)
    plot(data, os.path.splitext(source)[0] + ".png")
