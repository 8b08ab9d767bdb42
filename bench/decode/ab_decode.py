#!/usr/bin/env python3
"""Interleaved A/B of decode kernels from several benchmark libraries, in
one process on the same data, with torch SDPA's cuDNN backend timed in the
same turns: each library is bench/decode/bench_kernels.cu built against
its own copy of kvrt's device headers (bench/prefill/build_ab_libs.sh), and
its entry is the kernel bench_decode.py's "kvcc pP" columns time
(kvcc_bench_launch_direct: split-K or wide blocks as kvrt plans them, the
merge included, resident page tables, pages in random order unless
--page-order says otherwise).

For each shape (fp16, d 128, the decode benchmark's grid unless --shapes
says otherwise) every entry runs once on NaN-poisoned outputs and is
checked against a float32 reference (bench_decode.py's bound); then all
entries and cuDNN are timed in turns (interleaved_ms), the turns repeated
--rounds times, and each entry's time is the median of its rounds.

Back to back, a call whose K+V fit in L2 (under about 50 MB on the H200:
batch 1 up to 8K, say) finds part of its data left there by the call
before, and how much depends on what ran before the entry's turn: in
session 30 two entries running one kernel on the same pages at 32/8
1 x 8K took 0.0144 and 0.0164 ms, each steady over its rounds, and cuDNN
reads 1 x 8K in 0.0128 ms back to back but 0.0169 ms when each call
reads a copy of the cache the calls before it did not
(bench/results/decode_ab/README.md). --rotate times such shapes that way,
as a model's decode step reads each layer's cache after the other layers:
every entry and cuDNN cycle through copies of the cache (each kvcc copy
in its own pool) that add up to four times the L2 size besides the one a
call reads.

An entry is a library directory, optionally followed by @VAR=VALUE
settings of kvrt's environment that hold while that entry runs (checked
and timed), so that one library can be timed against itself under another
setting, e.g. a forced split count against the planner's:
build-gpu/lib,build-gpu/lib@KVRT_DECODE_SPLITS=43. @variant=NAME instead
runs one of bench_kernels.cu's page-16 kernel variants (bench_decode.py's
VARIANT_NAMES, as its --variants) in place of the emitted kernel.

Usage (on the GPU machine; run it again with the libraries reversed,
then ab_decode_table.py renders both runs as one markdown table):
  bench/prefill/build_ab_libs.sh base=/path/to/base/include tree=
  python3 bench/decode/ab_decode.py build-gpu/ab/base,build-gpu/ab/tree \\
      [--pages 16,64] [--shapes 32/8:16x4096,...] [--json FILE]
  python3 bench/decode/ab_decode_table.py ab1.json ab2.json
"""
import argparse
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(__file__))
from ab_decode_table import (parse_shapes, rotating,  # noqa: E402
                             rotation_copies)
from bench_decode import (ERROR_BOUND, GQA, HEAD_DIM, PAGE_ORDERS,  # noqa: E402
                          SHAPES, SPECIAL_VARIANTS, VARIANT_NAMES,
                          ResidentPages, checked_run, finish_ab,
                          interleaved_ms, load_libraries, reference,
                          rel_error)


def parse_entry(entry):
    """(library directory, {VAR: VALUE}) of an entry DIR[@VAR=VALUE...];
    a variant=NAME setting is checked against VARIANT_NAMES."""
    lib_dir, *settings = entry.split("@")
    lib_dir = os.path.normpath(lib_dir)
    env = {}
    for setting in settings:
        var, sep, value = setting.partition("=")
        if not sep or not var:
            raise ValueError(f"{entry}: expected @VAR=VALUE, got @{setting}")
        if var == "variant" and (value not in VARIANT_NAMES
                                 or value in SPECIAL_VARIANTS):
            raise ValueError(f"{entry}: no variant {value!r}; variants: "
                             + ", ".join(v for v in VARIANT_NAMES
                                         if v not in SPECIAL_VARIANTS))
        env[var] = value
    return lib_dir, env


def launcher(lib, pages, q, out, scale, settings):
    B, Hkv, S, page = pages.shape
    env = {var: value for var, value in settings.items() if var != "variant"}
    variant = (VARIANT_NAMES.index(settings["variant"]) + 1
               if "variant" in settings else 0)

    def fn():
        saved = {var: os.environ.get(var) for var in env}
        os.environ.update(env)
        lib.kvcc_bench_set_variant(variant)
        try:
            status = lib.kvcc_bench_launch_direct(
                pages.pool.data_ptr(), 2 * page * HEAD_DIM * 2,
                pages.indptr.data_ptr(), pages.kv_lens.data_ptr(),
                pages.indices.data_ptr(), q.data_ptr(), out.data_ptr(), B,
                q.shape[2], Hkv, page, S, scale, pages.stream)
        finally:
            lib.kvcc_bench_set_variant(0)
            for var, value in saved.items():
                if value is None:
                    del os.environ[var]
                else:
                    os.environ[var] = value
        if status != 0:
            raise RuntimeError(f"kvcc_bench_launch_direct: status {status}")
    return fn


def run_shape(kvrt, libs, shape, page, rounds, rotate_bytes=0):
    hq, hkv, B, S = shape
    torch.manual_seed(0)
    q = torch.randn(B, hq, 1, HEAD_DIM, device="cuda", dtype=torch.float16)
    k = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=torch.float16)
    v = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=torch.float16)
    ref = reference(q, k, v)
    scale = 1.0 / math.sqrt(HEAD_DIM)
    qk = q.transpose(1, 2).contiguous()
    copies = rotation_copies(2 * k.numel() * k.element_size(), rotate_bytes)
    # Each copy of the pages in its own pool (and, for cuDNN, of k and v):
    # with --rotate every call reads a copy the calls before it did not.
    pages = [ResidentPages(kvrt, k, v, page) for _ in range(copies)]
    kvs = [(k, v)] + [(k.clone(), v.clone()) for _ in range(copies - 1)]
    row = {"hq": hq, "hkv": hkv, "B": B, "S": S, "page": page,
           "page_order": ResidentPages.order, "copies": copies,
           "entries": {}}
    failures = []
    fns = {}
    first = None
    # One turn for all entries: they read the same pools, and an entry's
    # call must not find the copy the last call of another left in L2.
    turn = [0]
    for name, lib, env in libs:
        out = torch.empty_like(qk)
        fn = rotating([launcher(lib, p, qk, out, scale, env) for p in pages],
                      turn)
        err = checked_run(fn, out, ref)
        diff = rel_error(out, first.float()) if first is not None else 0.0
        if first is None:
            first = out.clone()
        row["entries"][name] = {"err": err, "diff_vs_first": diff}
        if not err < ERROR_BOUND:
            failures.append(f"{name} {hq}/{hkv} {B} x {S} p{page}: "
                            f"error {err}")
        fns[name] = fn

    def sdpa(k, v):
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    cudnn = rotating([lambda k=k, v=v: sdpa(k, v) for k, v in kvs])
    row["cudnn_err"] = rel_error(cudnn(), ref)
    fns["cudnn"] = cudnn
    if not failures:
        samples = {name: [] for name in fns}
        for _ in range(rounds):
            for name, ms in interleaved_ms(fns).items():
                samples[name].append(ms)
        for name, times in samples.items():
            entry = row["entries"].setdefault(name, {})
            entry["ms"] = statistics.median(times)
            entry["ms_rounds"] = times
    del pages, kvs
    return row, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib_dirs", help="benchmark library directories "
                    "(build_ab_libs.sh), comma-separated, each optionally "
                    "followed by @VAR=VALUE environment settings for its "
                    "entry; the first one's libkvrt.so is loaded")
    ap.add_argument("--pages", default="16", help="page sizes (16, 64)")
    ap.add_argument("--shapes", help="Hq/Hkv:BxS,... instead of the decode "
                    "benchmark's grid")
    ap.add_argument("--page-order", choices=PAGE_ORDERS, default="random",
                    help="where the pages lie in the pool (bench_decode.py's "
                    "page_permutation)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repetitions of the timing turns")
    ap.add_argument("--rotate", action="store_true",
                    help="time each call on a copy of the cache the calls "
                    "before it did not read (copies of K+V adding up to "
                    "four times the L2 size besides the one read): needed "
                    "where a shape's K+V fit in L2 (under about 50 MB on "
                    "the H200), whose back-to-back times otherwise depend "
                    "on what ran before")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    try:
        entries = [parse_entry(e) for e in args.lib_dirs.split(",")]
        dirs = list(dict.fromkeys(lib_dir for lib_dir, _ in entries))
        kvrt, loaded = load_libraries(dirs, ["kvcc_bench_launch_direct"])
    except ValueError as ex:
        ap.error(str(ex))
    by_dir = dict(zip(dirs, (lib for _, lib in loaded)))
    base_names = dict(zip(dirs, (name for name, _ in loaded)))
    libs = [(base_names[lib_dir]
             + "".join(f"@{var}={value}" for var, value in env.items()),
             by_dir[lib_dir], env) for lib_dir, env in entries]
    names = [name for name, _, _ in libs]
    if len(set(names)) != len(names):
        ap.error(f"entries must differ: {names}")
    pages = [int(x) for x in args.pages.split(",")]
    if any("variant" in env for _, _, env in libs) and pages != [16]:
        # bench_kernels.cu's variants are page-16 kernels; at other page
        # sizes the emitted kernel would run under the variant's name.
        ap.error("@variant entries need --pages 16")
    # Settings every entry inherits (an exported knob would force the
    # baseline too): printed, and kept in the JSON's rows.
    inherited = {var: value for var, value in os.environ.items()
                 if var.startswith("KVRT_")}
    if inherited:
        print(f"inherited by every entry: {inherited}")
    ResidentPages.order = args.page_order
    try:
        shapes = (parse_shapes(args.shapes) if args.shapes else
                  [(hq, hkv, B, S) for hq, hkv in GQA for B, S in SHAPES])
    except ValueError as ex:
        ap.error(str(ex))
    columns = ([f"{n} ms" for n in names] + ["cuDNN ms"]
               + [f"{n} / {names[0]}" for n in names[1:]]
               + [f"vs cuDNN {n}" for n in names] + ["errors"])
    print("| Hq/Hkv | B × S | page | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    rotate_bytes = 0
    if args.rotate:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        rotate_bytes = 4 * (getattr(props, "L2_cache_size", 0) or (50 << 20))
    rows, failures = [], []
    for page in pages:
        for shape in shapes:
            row, bad = run_shape(kvrt, libs, shape, page, args.rounds,
                                 rotate_bytes)
            row["environment"] = inherited
            rows.append(row)
            failures += bad
            e = row["entries"]
            errs = " / ".join(f"{e[n]['err']:.1e}" for n in names)
            head = (f"| {row['hq']}/{row['hkv']} | {row['B']} × {row['S']} | "
                    f"{page} | ")
            if "ms" not in e.get("cudnn", {}):
                print(head + "not timed | " + errs + " |", flush=True)
                continue
            ms = {n: e[n]["ms"] for n in names + ["cudnn"]}
            # Ratios are times: above 1 means faster than the first
            # library (or than cuDNN).
            cells = ([f"{ms[n]:.4f}" for n in names + ["cudnn"]]
                     + [f"{ms[names[0]] / ms[n]:.4f}" for n in names[1:]]
                     + [f"{ms['cudnn'] / ms[n]:.4f}" for n in names]
                     + [errs])
            print(head + " | ".join(cells) + " |", flush=True)
    for n in names[1:]:
        ratios = [r["entries"][names[0]]["ms"] / r["entries"][n]["ms"]
                  for r in rows if "ms" in r["entries"].get(n, {})
                  and "ms" in r["entries"][names[0]]]
        if ratios:
            geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
            print(f"{n} vs {names[0]}: geometric mean {geo:.4f}x faster, "
                  f"{min(ratios):.4f}-{max(ratios):.4f}")
    return finish_ab(args.json, rows, failures)


if __name__ == "__main__":
    sys.exit(main())
