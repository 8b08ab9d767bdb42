#!/usr/bin/env python3
"""In-process A/B of the warp-specialized prefill body's K/V producers
through kvrt_attention_launch, on pages of 16, 32 and 64 tokens (bf16, GQA
32/8, d 128): `runs`, kvrt's default (tensor copies through the cache's
tensor maps, params.h kv_tensor_map: a whole 128-key tile on a run of
consecutive pages as one copy per 64 columns, the other tiles a page at a
time; on pages of 16 only where most of the batch's tiles lie on runs,
else cp.async); `pages` (KVRT_PREFILL_TMA_RUNS=0: every tile a page at a
time where the maps are passed); `cpasync` (KVRT_PREFILL_TMA=0). kvrt's
allocator hands a fresh pool's pages out in order, so the caches' rows lie
on runs; with --fragment the pool's free pages are shuffled first
(bench_decode.py's PagedCache), so that almost no tile lies on a run (on
pages of 16 kvrt then keeps cp.async).

The entries launch the same kernel on the same cache; only the knobs,
which kvrt reads at every launch, differ, so they are timed in turns
(bench_decode.py's interleaved_ms) in one process. Every entry first runs
on NaN-poisoned outputs against a float32 reference (the GPU tests' bf16
bound) and its plan must say which producer it runs.

Several libraries (LIB_DIR,LIB_DIR,...: copies of the device headers
built by build_ab_libs.sh) compare a change to the body in the same turns:
each entry is then NAME:ENTRY (NAME the library's directory name), the
caches are the first library's kvrt (all link the same libkvrt.so), and
--entries picks the producers (e.g. --entries runs).

Usage (on the GPU machine, after building build-gpu/ab/NAME with
bench/prefill/build_ab_libs.sh):
  python3 bench/prefill/ab_tensor_copies.py build-gpu/ab/tree[,build-gpu/ab/base] \\
      [--entries runs,pages,cpasync] [--pages 16,32,64] [--fragment] \\
      [--json FILE]
"""
import argparse
import ctypes
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "decode"))
from bench_decode import (PagedCache, finish_ab,  # noqa: E402
                          load_libraries, rel_error)
from bench_prefill import KVRT_DTYPE_BF16, chunk_reference  # noqa: E402
from ab_prefill import prefill_flops, time_entries  # noqa: E402

HQ, HKV, HEAD_DIM = 32, 8, 128
ERROR_BOUND = 1.6e-2  # bf16, as the GPU tests
PAGES = (16, 32, 64)
# (causal, B, prefix P, chunk T); 8 x 1040 ends inside a page of 32 or 64.
SHAPES = [(False, 1, 0, 8192), (False, 4, 0, 4096), (False, 8, 0, 1024),
          (False, 8, 0, 1040), (True, 1, 0, 8192), (True, 8, 0, 1024),
          (True, 1, 15872, 512)]
# Knobs per entry (kvrt reads them at every launch).
ENTRIES = {"runs": {},
           "pages": {"KVRT_PREFILL_TMA_RUNS": "0"},
           "cpasync": {"KVRT_PREFILL_TMA": "0"}}
KNOBS = ("KVRT_PREFILL_TMA", "KVRT_PREFILL_TMA_RUNS")


def set_knobs(knobs):
    for name in KNOBS:
        if name in knobs:
            os.environ[name] = knobs[name]
        else:
            os.environ.pop(name, None)


def expected_plan(name, page, fragment):
    """(tensor_copies, tensor_copy_runs) kvrt's plan must report: on pages
    of 16 kvrt passes the tensor maps only where most tiles lie on runs of
    consecutive pages (allocator order: all but a few; shuffled: none)."""
    if name == "cpasync" or (page < 32 and fragment):
        return 0, 0
    return 1, int(name == "runs" and page < 128)


def run_shape(kvrt, libs, producers, page, shape, reps, fragment):
    """Checks and times every (library, producer) entry on one shape: the
    row and the failures. `libs`: [(name, libkvcc_bench)]; entries are
    named by the producer alone when there is one library."""
    causal, B, prefix, tokens = shape
    S = prefix + tokens
    torch.manual_seed(0)
    q = torch.randn(B, tokens, HQ, HEAD_DIM, device="cuda",
                    dtype=torch.bfloat16)
    k = torch.randn(B, HKV, S, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(B, HKV, S, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    cache = PagedCache(kvrt, k, v, page, KVRT_DTYPE_BF16, fragment=fragment)
    out = torch.empty_like(q)
    scale = 1 / math.sqrt(HEAD_DIM)
    row = {"page": page, "B": B, "prefix": prefix, "tokens": tokens,
           "causal": causal, "fragment": fragment, "entries": []}
    failures = []
    entries = {}
    for lib_name, bench in libs:
        kernel = bench.kvcc_bench_prefill_kernel_page(int(causal), page)
        for producer in producers:
            name = producer if len(libs) == 1 else f"{lib_name}:{producer}"
            entries[name] = (producer, kernel)

    def launcher(knobs, kernel):
        def fn():
            set_knobs(knobs)
            cache.prefill(q, out, tokens, scale, causal, kernel)
        return fn

    fns = {name: launcher(ENTRIES[producer], kernel)
           for name, (producer, kernel) in entries.items()}
    ref = chunk_reference(q.transpose(1, 2), k, v, causal)
    where = (f"page {page} {'causal' if causal else 'non-causal'} "
             f"{B} x ({prefix} + {tokens})")
    first = None
    for name, (producer, kernel) in entries.items():
        set_knobs(ENTRIES[producer])
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
                               "tensor_copies": plan["tensor_copies"],
                               "tensor_copy_runs": plan["tensor_copy_runs"]})
        if not err < ERROR_BOUND:
            failures.append(f"{name} {where}: error {err}")
        got = (plan["tensor_copies"], plan["tensor_copy_runs"])
        if got != expected_plan(producer, page, fragment):
            failures.append(f"{name} {where}: plan says (tensor_copies, "
                            f"tensor_copy_runs) {got}")
    if not failures:
        time_entries(row, fns, prefill_flops(B, prefix, tokens, causal), reps)
    set_knobs({})
    cache.close()
    return row, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib_dirs", help="directory of libkvrt.so and "
                    "libkvcc_bench.so (build_ab_libs.sh), or several, "
                    "comma-separated, to compare")
    ap.add_argument("--entries", default=",".join(ENTRIES),
                    help="producers to time, comma-separated (runs, pages, "
                    "cpasync)")
    ap.add_argument("--reps", type=int, default=16)
    ap.add_argument("--pages", default=",".join(map(str, PAGES)),
                    help="page sizes, comma-separated (16, 32, 64)")
    ap.add_argument("--shapes", help="shapes instead of the default ones: "
                    "MASK:B:P:T,... (MASK c or nc, B sequences, prefix P, "
                    "chunk T)")
    ap.add_argument("--fragment", action="store_true",
                    help="shuffle the pool's free pages before the appends")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    producers = args.entries.split(",")
    unknown = [x for x in producers if x not in ENTRIES]
    if unknown:
        ap.error(f"unknown entries {unknown}: choose from {list(ENTRIES)}")
    try:
        kvrt, libs = load_libraries(args.lib_dirs.split(","))
    except ValueError as ex:
        ap.error(str(ex))
    for _, bench in libs:
        bench.kvcc_bench_prefill_kernel_page.restype = ctypes.c_void_p
    rows, failures = [], []
    names = [p if len(libs) == 1 else f"{lib}:{p}"
             for lib, _ in libs for p in producers]
    # Ratios: runs against the other producers with one library, else
    # every entry against the first.
    if len(libs) == 1:
        ratios = [("runs", other) for other in ("pages", "cpasync")
                  if "runs" in names and other in names]
    else:
        ratios = [(n, names[0]) for n in names[1:]]
    print(f"pages {'shuffled' if args.fragment else 'in allocator order'}")
    print("| page | mask | B × (prefix + tokens) | "
          + " | ".join(f"{n} TFLOP/s" for n in names)
          + "".join(f" | {a} / {b}" for a, b in ratios) + " | errors |")
    print("|---|---|---|" + "---|" * (len(names) + len(ratios) + 1))
    shapes = SHAPES
    if args.shapes:
        shapes = []
        for spec in args.shapes.split(","):
            mask, B, P, T = spec.split(":")
            shapes.append((mask == "c", int(B), int(P), int(T)))
    for page in [int(x) for x in args.pages.split(",")]:
        for shape in shapes:
            row, bad = run_shape(kvrt, libs, producers, page, shape,
                                 args.reps, args.fragment)
            rows.append(row)
            failures += bad
            e = {x["entry"]: x for x in row["entries"]}
            mask = "causal" if row["causal"] else "non-causal"
            errs = " / ".join(f"{x['err']:.1e}" for x in row["entries"])
            head = (f"| {page} | {mask} | {row['B']} × ({row['prefix']} + "
                    f"{row['tokens']}) | ")
            if all("TFLOPs" in e[n] for n in names):
                tf = {n: e[n]["TFLOPs"] for n in names}
                print(head + " | ".join(f"{tf[n]:.0f}" for n in names)
                      + "".join(f" | {tf[a] / tf[b]:.3f}" for a, b in ratios)
                      + f" | {errs} |", flush=True)
            else:
                print(head + " | ".join("not timed" for _ in names)
                      + " |" * len(ratios) + f" | {errs} |", flush=True)
    return finish_ab(args.json, rows, failures)


if __name__ == "__main__":
    sys.exit(main())
