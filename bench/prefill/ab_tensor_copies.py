#!/usr/bin/env python3
"""In-process A/B of the warp-specialized prefill body's two K/V producers
through kvrt_attention_launch: tensor copies (the cache's tensor map,
params.h kv_tensor_map) against cp.async (KVRT_PREFILL_TMA=0), on pages of
16, 32 and 64 tokens (bf16, GQA 32/8, d 128; kvrt's own allocator order).
kvrt takes tensor copies on pages of 32 tokens or more
(prefillWsTensorCopies), so on pages of 16 both entries run cp.async: their
ratio shows the comparison's noise.

Both entries launch the same kernel on the same cache; only the knob,
which kvrt reads at every launch, differs, so they are timed in turns
(bench_decode.py's interleaved_ms) in one process. Every entry first runs
on NaN-poisoned outputs against a float32 reference (the GPU tests' bf16
bound) and its plan must say which producer it runs.

Usage (on the GPU machine, after building build-gpu/ab/NAME with
bench/prefill/build_ab_libs.sh):
  python3 bench/prefill/ab_tensor_copies.py build-gpu/ab/tree [--json FILE]
"""
import argparse
import ctypes
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "decode"))
from bench_decode import Kvrt, PagedCache, rel_error  # noqa: E402
from bench_prefill import KVRT_DTYPE_BF16, chunk_reference  # noqa: E402
from ab_prefill import prefill_flops, time_entries  # noqa: E402

HQ, HKV, HEAD_DIM = 32, 8, 128
ERROR_BOUND = 1.6e-2  # bf16, as the GPU tests
PAGES = (16, 32, 64)
# (causal, B, prefix P, chunk T); 8 x 1040 ends inside a page of 32 or 64.
SHAPES = [(False, 1, 0, 8192), (False, 4, 0, 4096), (False, 8, 0, 1024),
          (False, 8, 0, 1040), (True, 1, 0, 8192), (True, 8, 0, 1024),
          (True, 1, 15872, 512)]
ENTRIES = {"tma": None, "cpasync": "0"}  # KVRT_PREFILL_TMA


def run_shape(kvrt, page, shape, reps):
    causal, B, prefix, tokens = shape
    S = prefix + tokens
    torch.manual_seed(0)
    q = torch.randn(B, tokens, HQ, HEAD_DIM, device="cuda",
                    dtype=torch.bfloat16)
    k = torch.randn(B, HKV, S, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(B, HKV, S, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    cache = PagedCache(kvrt, k, v, page, KVRT_DTYPE_BF16)
    kernel = kvrt.bench.kvcc_bench_prefill_kernel_page(int(causal), page)
    out = torch.empty_like(q)
    scale = 1 / math.sqrt(HEAD_DIM)
    row = {"page": page, "B": B, "prefix": prefix, "tokens": tokens,
           "causal": causal, "entries": []}
    failures = []

    def launcher(knob):
        def fn():
            if knob is None:
                os.environ.pop("KVRT_PREFILL_TMA", None)
            else:
                os.environ["KVRT_PREFILL_TMA"] = knob
            cache.prefill(q, out, tokens, scale, causal, kernel)
        return fn

    fns = {name: launcher(knob) for name, knob in ENTRIES.items()}
    ref = chunk_reference(q.transpose(1, 2), k, v, causal)
    where = (f"page {page} {'causal' if causal else 'non-causal'} "
             f"{B} x ({prefix} + {tokens})")
    first = None
    for name, knob in ENTRIES.items():
        fns[name]()  # sets the knob for the plan below
        plan = kvrt.plan(cache, tokens, HQ, causal, kernel)
        out.fill_(float("nan"))
        fns[name]()
        torch.cuda.synchronize()
        err = rel_error(out.transpose(1, 2), ref)
        diff = rel_error(out, first.float()) if first is not None else 0.0
        if first is None:
            first = out.clone()
        row["entries"].append({"entry": name, "err": err, "diff_vs_first": diff,
                               "query_tile_rows": plan["query_tile_rows"],
                               "tensor_copies": plan["tensor_copies"]})
        if not err < ERROR_BOUND:
            failures.append(f"{name} {where}: error {err}")
        if plan["tensor_copies"] != (1 if knob is None and page >= 32
                                     else 0):
            failures.append(f"{name} {where}: plan says tensor_copies "
                            f"{plan['tensor_copies']}")
    if not failures:
        time_entries(row, fns, prefill_flops(B, prefix, tokens, causal), reps)
    os.environ.pop("KVRT_PREFILL_TMA", None)
    cache.close()
    return row, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib_dir", help="directory of libkvrt.so and "
                    "libkvcc_bench.so (build_ab_libs.sh)")
    ap.add_argument("--reps", type=int, default=16)
    ap.add_argument("--pages", default=",".join(map(str, PAGES)),
                    help="page sizes, comma-separated (16, 32, 64)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    kvrt = Kvrt(args.lib_dir)
    kvrt.bench.kvcc_bench_prefill_kernel_page.restype = ctypes.c_void_p
    rows, failures = [], []
    print("| page | mask | B × (prefix + tokens) | tma TFLOP/s | cpasync "
          "TFLOP/s | tma / cpasync | errors |")
    print("|---|---|---|---|---|---|---|")
    for page in [int(x) for x in args.pages.split(",")]:
        for shape in SHAPES:
            row, bad = run_shape(kvrt, page, shape, args.reps)
            rows.append(row)
            failures += bad
            e = {x["entry"]: x for x in row["entries"]}
            mask = "causal" if row["causal"] else "non-causal"
            errs = " / ".join(f"{x['err']:.1e}" for x in row["entries"])
            if "TFLOPs" in e["tma"]:
                ratio = e["tma"]["TFLOPs"] / e["cpasync"]["TFLOPs"]
                print(f"| {page} | {mask} | {row['B']} × ({row['prefix']} + "
                      f"{row['tokens']}) | {e['tma']['TFLOPs']:.0f} | "
                      f"{e['cpasync']['TFLOPs']:.0f} | {ratio:.3f} | {errs} |",
                      flush=True)
            else:
                print(f"| {page} | {mask} | {row['B']} × ({row['prefix']} + "
                      f"{row['tokens']}) | not timed | not timed | | {errs} |",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(),
                       "command": " ".join(sys.argv), "rows": rows,
                       "failures": failures}, f, indent=1)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
