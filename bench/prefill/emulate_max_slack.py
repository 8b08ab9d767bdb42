#!/usr/bin/env python3
"""Emulates the prefill bodies' online softmax with a max threshold
(RowSoftmax::update's maxSlack, kPrefillMaxSlack) on the data of the GPU
test GpuSplitKTest.PrefillScoresClimbingAcrossTiles (rampKeys), in float64
with the kernels' roundings: probabilities rounded to the element type
before P·V, sums in fp32. For each threshold it prints the largest
probability reached and the relative L2 error against an exact softmax;
"not finite" where probabilities overflow the element type, which is what
the GPU test would see for that threshold.

Usage: python3 bench/prefill/emulate_max_slack.py [--thresholds 0,8,16,17,30]
Needs numpy (and ml_dtypes for the bf16 rows, skipped without it).
"""
import argparse
import sys

import numpy as np

RAMP_DIMS = 16


def ramp(length):
    """rampKeys's value of the first RAMP_DIMS key dimensions per token."""
    t = np.arange(length)
    return -3.0 + 6.0 * t / 3000.0 + 3.0 * (t == 1500)


def emulate(dtype, head_dim, length, tokens, tile_keys, threshold, causal,
            seed=0):
    """(relative error, log2 of the largest probability, finite) of one
    (sequence, kv head)'s query rows."""
    rng = np.random.default_rng(seed)

    def rounded(a):
        return a.astype(dtype).astype(np.float64)

    keys = rounded(rng.uniform(-1, 1, (length, head_dim)))
    values = rounded(rng.uniform(-1, 1, (length, head_dim)))
    queries = rounded(rng.uniform(-2, 2, (tokens, head_dim)))
    keys[:, :RAMP_DIMS] = rounded(ramp(length))[:, None]
    queries[:, :RAMP_DIMS] = 3.0
    scores = queries @ keys.T / np.sqrt(head_dim) * np.log2(np.e)
    diff = norm = 0.0
    largest = 0.0
    finite = True
    for i in range(tokens):
        row = scores[i, :length - tokens + i + 1] if causal else scores[i]
        exact = np.exp2(row - row.max())
        exact = exact / exact.sum() @ values[:len(row)]
        running, total = -np.inf, np.float32(0)
        acc = np.zeros(head_dim)
        with np.errstate(over="ignore", invalid="ignore"):
            for first in range(0, len(row), tile_keys):
                tile = row[first:first + tile_keys].astype(np.float32)
                tile_max = tile.max()
                new = tile_max if tile_max > running + threshold else running
                factor = 0.0 if running == -np.inf else np.exp2(running - new)
                probs = np.exp2(tile - np.float32(new)).astype(np.float32)
                largest = max(largest, float(probs.max()))
                total = np.float32(total * factor + probs.sum(dtype=np.float32))
                operands = rounded(probs)
                finite &= bool(np.all(np.isfinite(operands)))
                acc = acc * factor + operands @ values[first:first + len(tile)]
                running = new
            out = rounded(acc / total)
        diff += float(((out - exact) ** 2).sum())
        norm += float((exact ** 2).sum())
    error = np.sqrt(diff / norm) if finite and np.isfinite(diff) else np.inf
    return error, np.log2(largest), finite


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", default="0,8,16,17,20,30")
    args = ap.parse_args()
    try:
        thresholds = [float(x) for x in args.thresholds.split(",")]
    except ValueError:
        ap.error("--thresholds: comma-separated numbers")
    types = [("f16", np.float16)]
    try:
        import ml_dtypes
        types.append(("bf16", ml_dtypes.bfloat16))
    except ImportError:
        print("(ml_dtypes missing: no bf16 rows)", file=sys.stderr)
    # The test's shapes: d 128 (causal and not), d 64 (not causal), rows of
    # 3000 keys and 70 query tokens; tiles of 128 keys (warp-specialized
    # body) and 64 (64-row and mma.sync bodies).
    print("| type | d | causal | tile keys | threshold | largest p | "
          "rel. error |")
    print("|---|---|---|---|---|---|---|")
    for name, dtype in types:
        for head_dim, causal in ((128, True), (128, False), (64, False)):
            for tile_keys in (128, 64):
                for threshold in thresholds:
                    error, largest, finite = emulate(
                        dtype, head_dim, 3000, 70, tile_keys, threshold,
                        causal)
                    shown = f"{error:.1e}" if finite else "not finite"
                    print(f"| {name} | {head_dim} | {int(causal)} | "
                          f"{tile_keys} | {threshold:g} | 2^{largest:.1f} | "
                          f"{shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
