#!/usr/bin/env python3
"""Interleaved A/B of prefill kernels from several benchmark libraries, in
one process on the same data: each library is bench/decode/bench_kernels.cu
built against its own copy of kvrt's device headers (build_ab_libs.sh), and
each entry LIB:VARIANT times one of its kvcc_bench_prefill_direct variants
(6: kvrt's own kernel, the emitted one; bench_prefill.py --variants lists
the others). Comparing libraries in turns is how the prefill body's
changes since session 17 were measured: a kernel timed alone drifts by a
few percent between runs and between machines, more than most changes
move it.

For each shape (bf16, GQA 32/8, d 128, page 16, pages in random order,
chunks of T tokens after a cached prefix of P): every entry runs once on
NaN-poisoned outputs and is checked against a float32 reference (relative
L2 error within the GPU tests' bf16 bound); then all entries are timed in
turns (bench_decode.py's interleaved_ms) and reported in TFLOP/s, with the
relative difference of each output from the first entry's (0: the same
bits).

Usage (on the GPU machine):
  bench/prefill/build_ab_libs.sh head= new=/path/to/changed/include
  python3 bench/prefill/ab_prefill.py build-gpu/ab/head:6,build-gpu/ab/new:6 \\
      [--causal 0|1] [--json FILE]
Run it a second time with the entries reversed: the order within a rep
rotates, but the first entry still warms up first. ab_table.py renders
both runs' JSON as one markdown table (bench/results/prefill_ab/).
"""
import argparse
import ctypes
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "decode"))
from bench_decode import (Kvrt, ResidentPages, interleaved_ms,  # noqa: E402
                          rel_error)
from bench_prefill import chunk_reference  # noqa: E402

DEVICE = "cuda"
HQ, HKV, HEAD_DIM, PAGE = 32, 8, 128, 16
ERROR_BOUND = 1.6e-2  # bf16, as bench_prefill.py and the GPU tests
# (B, prefix P, chunk T): ANCHORS' prompts, short rows where the per-item
# code shows, chunks after a prefix, and a chunk that is not a whole
# number of 128-row tiles.
SHAPES = [(1, 0, 8192), (4, 0, 4096), (8, 0, 1024), (16, 0, 512),
          (1, 15872, 512), (8, 1024, 1024), (8, 0, 1040)]


def parse_entries(text):
    """[(lib_dir, variant)] from LIB:VARIANT,LIB:VARIANT,..."""
    entries = []
    for item in text.split(","):
        lib, sep, variant = item.rpartition(":")
        if not sep or not lib or not variant.isdigit():
            raise ValueError(f"expected LIB:VARIANT, got '{item}'")
        entries.append((lib, int(variant)))
    return entries


def entry_names(entries):
    """Short names for the table: the library directory's base name and the
    variant, made unique by position where they repeat."""
    names = [f"{os.path.basename(os.path.normpath(lib))}:{v}"
             for lib, v in entries]
    return [n if names.count(n) == 1 else f"{n}#{i}"
            for i, n in enumerate(names)]


def prefill_flops(B, prefix, tokens, causal):
    """4·B·Hq·d times the (query, key) pairs a chunk's queries see."""
    pairs = tokens * prefix + (tokens * (tokens + 1) / 2 if causal
                               else tokens * tokens)
    return 4.0 * B * HQ * HEAD_DIM * pairs


def load_libraries(entries):
    """kvrt (from the first entry's directory) and each directory's
    libkvcc_bench.so, with kvcc_bench_prefill_direct's signature."""
    kvrt = Kvrt(entries[0][0])
    libs = {entries[0][0]: kvrt.bench}
    argtypes = kvrt.bench.kvcc_bench_prefill_direct.argtypes
    for lib_dir, _ in entries:
        if lib_dir not in libs:
            lib = ctypes.CDLL(os.path.join(lib_dir, "libkvcc_bench.so"))
            lib.kvcc_bench_prefill_direct.argtypes = argtypes
            libs[lib_dir] = lib
    return kvrt, libs


def run_shape(kvrt, libs, entries, names, shape, causal, reps):
    """One shape: check every entry, time them in turns. Returns the JSON
    row and the failures."""
    B, prefix, tokens = shape
    S = prefix + tokens
    torch.manual_seed(0)
    q = torch.randn(B, tokens, HQ, HEAD_DIM, device=DEVICE,
                    dtype=torch.bfloat16)
    k = torch.randn(B, HKV, S, HEAD_DIM, device=DEVICE, dtype=torch.bfloat16)
    v = torch.randn(B, HKV, S, HEAD_DIM, device=DEVICE, dtype=torch.bfloat16)
    pages = ResidentPages(kvrt, k, v, PAGE)
    # Libraries whose headers read tensor maps (kvcc_bench_page_tensor)
    # get the pool's, as kvrt's caches do, where kvrt would pass them: on
    # pages of 32 and more; on pages of 16 only to batches whose tiles lie
    # on runs of consecutive pages, which these randomly placed pages never
    # do. The others copy by cp.async.
    for lib in libs.values():
        if PAGE >= 32 and hasattr(lib, "kvcc_bench_page_tensor"):
            lib.kvcc_bench_page_tensor.argtypes = [
                ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
            lib.kvcc_bench_page_tensor(
                pages.pool.data_ptr(), 2 * PAGE * HEAD_DIM * 2,
                pages.pool.shape[0], PAGE)
    stream = torch.cuda.current_stream().cuda_stream
    outs = [torch.empty_like(q) for _ in entries]
    scale = 1 / math.sqrt(HEAD_DIM)

    def launcher(i):
        lib_dir, variant = entries[i]

        def fn():
            status = libs[lib_dir].kvcc_bench_prefill_direct(
                variant, pages.pool.data_ptr(), 2 * PAGE * HEAD_DIM * 2,
                pages.indptr.data_ptr(), pages.kv_lens.data_ptr(),
                pages.indices.data_ptr(), q.data_ptr(), outs[i].data_ptr(),
                B, tokens, HQ, HKV, scale, int(causal), stream)
            if status != 0:
                raise RuntimeError(f"{names[i]}: CUDA error {status}")
        return fn

    fns = {names[i]: launcher(i) for i in range(len(entries))}
    ref = chunk_reference(q.transpose(1, 2), k, v, bool(causal))
    where = f"{'causal' if causal else 'non-causal'} {B} x ({prefix} + {tokens})"
    row = {"B": B, "prefix": prefix, "tokens": tokens, "causal": bool(causal),
           "entries": []}
    failures = []
    for i, name in enumerate(names):
        outs[i].fill_(float("nan"))
        fns[name]()
        torch.cuda.synchronize()
        err = rel_error(outs[i].transpose(1, 2), ref)
        diff = rel_error(outs[i], outs[0].float()) if i else 0.0
        row["entries"].append({"entry": name, "err": err,
                               "diff_vs_first": diff})
        if not err < ERROR_BOUND:
            failures.append(f"{name} {where}: error {err}")
    if not failures:
        time_entries(row, fns, prefill_flops(B, prefix, tokens, causal), reps)
    return row, failures


def time_entries(row, fns, flops, reps):
    """Times `fns` (entry name -> fn) in turns and records each of
    row["entries"]' milliseconds and TFLOP/s."""
    times = interleaved_ms(fns, reps=reps, calls=3 if flops > 2e12 else 10,
                           warm=3)
    for entry in row["entries"]:
        entry["ms"] = times[entry["entry"]]
        entry["TFLOPs"] = flops / entry["ms"] / 1e9


def line(row):
    """The shape's line: TFLOP/s, error and difference from the first."""
    head = (f"{'c ' if row['causal'] else 'nc'} "
            f"{row['B']}x({row['prefix']}+{row['tokens']})")
    cells = [f"{e['entry']} {e['TFLOPs']:.0f}" if "TFLOPs" in e
             else f"{e['entry']} (not timed)" for e in row["entries"]]
    checks = [f"err {e['err']:.1e} d {e['diff_vs_first']:.0e}"
              for e in row["entries"]]
    return (f"{head:18s} " + "  ".join(cells) + "   [" + "; ".join(checks) +
            "]")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entries", help="LIB:VARIANT,LIB:VARIANT,...")
    ap.add_argument("--causal", choices=["0", "1"],
                    help="one mask only (default: both)")
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    try:
        entries = parse_entries(args.entries)
    except ValueError as error:
        ap.error(str(error))
    names = entry_names(entries)
    kvrt, libs = load_libraries(entries)
    masks = [int(args.causal)] if args.causal else [0, 1]
    rows, failures = [], []
    for causal in masks:
        for shape in SHAPES:
            row, failed = run_shape(kvrt, libs, entries, names, shape,
                                    causal, args.reps)
            torch.cuda.empty_cache()  # the shape's tensors are gone
            rows.append(row)
            failures += failed
            print(line(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(),
                       "entries": names, "rows": rows, "failures": failures},
                      f, indent=1)
    if failures:
        print("CORRECTNESS FAILURES:", *failures, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
