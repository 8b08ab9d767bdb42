#!/usr/bin/env python3
"""Bar chart of bench/results/prefill_h200.json (or _noncausal.json):
TFLOP/s of kvcc's prefill, torch SDPA cuDNN and FlashAttention per shape.

Usage: python3 bench/prefill/plot_prefill.py bench/results/prefill_h200.json
(writes the PNG of the same name beside the JSON; needs matplotlib)."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    path = sys.argv[1]
    result = json.load(open(path))
    rows = result["rows"]
    labels = [f"{r['dtype']}\n{r['B']}x{r['S'] // 1024}K" for r in rows]
    causal = result.get("causal", True)
    series = [("kvcc (paged)", "kvcc_TFLOPs"),
              ("SDPA cuDNN", "cudnn_TFLOPs"),
              ("SDPA flash", "flash_TFLOPs")]
    width = 0.27
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, (name, key) in enumerate(series):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        ax.bar(xs, [r.get(key, 0.0) for r in rows], width, label=name)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels)
    kind = "causal" if causal else "non-causal"
    ax.set_ylabel(f"TFLOP/s ({kind})")
    ax.set_title(f"{kind.capitalize()} prefill, GQA 32/8, d=128 — "
                 f"{result['device']}")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = os.path.splitext(path)[0] + ".png"
    fig.savefig(out, dpi=120)
    print("wrote", out)


if __name__ == "__main__":
    main()
