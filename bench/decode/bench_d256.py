#!/usr/bin/env python3
"""Decode attention at head_dim 256 (Gemma-2 9B / Gemma-3 12B: 16 query and
8 KV heads), kvcc against torch SDPA (cuDNN and flash backends) in one
process, on the GPU machine.

kvcc runs through kvrt_attention_launch on a kvrt cache filled by
kvrt_append (the path compiled programs take), pages 16 and 64, with the
kernel kvcc emits for the op (bench_kernels.cu, kvcc_bench_kernel_d256);
two page-16 variants for comparison: the body with its query fragments in
shared memory instead of registers (`qsmem`: fewer registers, more blocks
per SM), and the CUDA-core body head_dim 256 ran on before (`simt`).
Every output is checked against a float32 reference (NaN-poisoned first)
before it is timed; times are the same as bench_decode.py's (time_ms:
back-to-back calls behind a GPU sleep, CUDA events, medians; isolated_ms:
ANCHORS.md's single-call method).

  python3 bench/decode/bench_d256.py --lib-dir build-gpu/lib --out DIR

Writes DIR/decode_d256_h200.json and .md. FlashInfer is not run here: its
modules are prebuilt for head_dim 128 only (flashinfer_prebuild.py), and
the GPU machine cannot fetch or JIT-build more within a benchmark call.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_decode as b  # noqa: E402

HQ, HKV, HEAD_DIM = 16, 8, 256
SHAPES = [(1, 32768), (1, 131072), (16, 4096), (16, 32768), (64, 8192)]
PAGES = [16, 64]
VARIANTS = [("qsmem", 1), ("simt", 2)]  # page 16, kvcc_bench_kernel_d256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", required=True)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    torch.manual_seed(0)
    kvrt = b.Kvrt(args.lib_dir)
    kvrt.bench.kvcc_bench_kernel_d256.restype = b.ctypes.c_void_p
    kvrt.bench.kvcc_bench_kernel_d256.argtypes = [b.ctypes.c_int,
                                                  b.ctypes.c_int]
    props = torch.cuda.get_device_properties(0)
    copy = b.copy_bandwidth()
    print(f"{props.name}; copy bandwidth {copy:.0f} GB/s (r+w)", flush=True)
    group = HQ // HKV
    scale = 1.0 / math.sqrt(HEAD_DIM)
    rows, failures = [], []
    for B, S in SHAPES:
        q = torch.randn(B, HQ, 1, HEAD_DIM, device="cuda", dtype=torch.float16)
        k = torch.randn(B, HKV, S, HEAD_DIM, device="cuda", dtype=torch.float16)
        v = torch.randn_like(k)
        kv_bytes = 2 * B * HKV * S * HEAD_DIM * 2
        ref = b.reference(q, k, v)
        row = dict(hq=HQ, hkv=HKV, B=B, S=S, d=HEAD_DIM, kv_bytes=kv_bytes)
        b.measure_sdpa(row, q, k, v, ref)
        qk = q.transpose(1, 2).contiguous()
        out = torch.empty_like(qk)
        for page in PAGES:
            cache = b.PagedCache(kvrt, k, v, page)
            kernels = [(f"kvcc_p{page}", 0)]
            if page == 16:
                kernels += [(f"kvcc_p16_{name}", variant)
                            for name, variant in VARIANTS]
            for key, variant in kernels:
                kernel = kvrt.bench.kvcc_bench_kernel_d256(page, variant)
                fn = lambda: cache.attention(qk, out, group, page, scale,
                                             kernel=kernel)
                try:
                    err = b.checked_run(fn, out, ref)
                    row[f"{key}_err"] = err
                    if not err < b.ERROR_BOUND:
                        failures.append(f"{key} B={B} S={S}: error {err}")
                        continue
                    row[f"{key}_ms"] = b.time_ms(fn)
                    if variant == 0:
                        row[f"{key}_isolated_ms"] = b.isolated_ms(fn)
                except Exception as ex:  # report, keep going
                    failures.append(f"{key} B={B} S={S}: {ex}")
            cache.close()
        for key in [name for name in row if name.endswith("_ms")]:
            if not key.endswith("isolated_ms"):
                row[key[:-3] + "_GBps"] = kv_bytes / row[key] / 1e6
        if "cudnn_ms" in row:
            row["speedup_vs_cudnn"] = {
                f"p{p}": row["cudnn_ms"] / row[f"kvcc_p{p}_ms"]
                for p in PAGES if f"kvcc_p{p}_ms" in row}
        if "cudnn_isolated_ms" in row:
            row["speedup_vs_cudnn_isolated"] = {
                f"p{p}": row["cudnn_isolated_ms"] / row[f"kvcc_p{p}_isolated_ms"]
                for p in PAGES if f"kvcc_p{p}_isolated_ms" in row}
        if "flash_ms" in row:
            row["speedup_vs_flash"] = {
                f"p{p}": row["flash_ms"] / row[f"kvcc_p{p}_ms"]
                for p in PAGES if f"kvcc_p{p}_ms" in row}
        print(json.dumps(row), flush=True)
        rows.append(row)
        del q, k, v, qk, out, ref
        torch.cuda.empty_cache()
    result = dict(device=props.name, torch=torch.__version__,
                  copy_GBps_rw=copy, error_bound=b.ERROR_BOUND,
                  failures=failures, rows=rows)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "decode_d256_h200.json"), "w") as f:
        json.dump(result, f, indent=1)
    text = markdown(result)
    with open(os.path.join(args.out, "decode_d256_h200.md"), "w") as f:
        f.write(text)
    print(text)
    if failures:
        print("CORRECTNESS FAILURES:", *failures, sep="\n  ")
        sys.exit(1)


def markdown(result):
    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    copy = result["copy_GBps_rw"]
    lines = [
        f"# Decode at head_dim 256 on the {result['device']}",
        "",
        f"GQA {HQ}/{HKV}, d={HEAD_DIM}, fp16, one query token, no mask; "
        f"torch {result['torch']}. Copy bandwidth in the same run "
        f"{copy:.0f} GB/s (read + write). kvcc: kvrt_attention_launch on a "
        "kvrt cache (pages filled by kvrt_append), the emitted decode kernel "
        "(tensor cores, query fragments in registers); `qsmem` the same "
        "body with them in shared memory, `simt` the CUDA-core body "
        "head_dim 256 used before (page 16). cuDNN and flash: torch SDPA "
        "on a contiguous cache (enable_gqa=True). Back-to-back times "
        "(bench_decode.py's time_ms), ms; ratios are cuDNN's time over "
        "kvcc's. Every output checked against float32 first (relative "
        f"error bound {result['error_bound']}).",
        "",
        "Command (GPU machine): `python3 bench/decode/bench_d256.py "
        "--lib-dir build-gpu/lib --out DIR`",
        "",
        "| B | S | kvcc p16 | kvcc p64 | qsmem p16 | simt p16 | cuDNN | flash "
        "| kvcc p16 GB/s (% copy) | vs cuDNN p16 | vs cuDNN p64 "
        "| vs flash p16 | isolated kvcc p16 / cuDNN | err p16 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        s = r.get("speedup_vs_cudnn", {})
        gbps = r.get("kvcc_p16_GBps")
        share = f"{gbps:.0f} ({100 * gbps / copy:.0f}%)" if gbps else "—"
        iso = (f"{r['kvcc_p16_isolated_ms']:.4f} / "
               f"{r['cudnn_isolated_ms']:.4f}"
               if "kvcc_p16_isolated_ms" in r and "cudnn_isolated_ms" in r
               else "—")
        lines.append(
            f"| {r['B']} | {r['S']} "
            f"| {cell(r.get('kvcc_p16_ms'), '.4f')} "
            f"| {cell(r.get('kvcc_p64_ms'), '.4f')} "
            f"| {cell(r.get('kvcc_p16_qsmem_ms'), '.4f')} "
            f"| {cell(r.get('kvcc_p16_simt_ms'), '.4f')} "
            f"| {cell(r.get('cudnn_ms'), '.4f')} "
            f"| {cell(r.get('flash_ms'), '.4f')} | {share} "
            f"| {cell(s.get('p16'), '.2f')} | {cell(s.get('p64'), '.2f')} "
            f"| {cell(r.get('speedup_vs_flash', {}).get('p16'), '.2f')} "
            f"| {iso} | {cell(r.get('kvcc_p16_err'), '.1e')} |")
    for p in PAGES:
        ratios = [r["speedup_vs_cudnn"][f"p{p}"] for r in result["rows"]
                  if f"p{p}" in r.get("speedup_vs_cudnn", {})]
        if ratios:
            lines.append("")
            lines.append(f"Geometric mean vs cuDNN, page {p}: "
                         f"{b.geomean(ratios):.2f}x; minimum {min(ratios):.2f}x")
    errors = [f"{r['B']} x {r['S']}: {name} {r[name + '_error']}"
              for r in result["rows"] for name in ("cudnn", "flash")
              if name + "_error" in r]
    if errors:
        lines += ["", "Backends that failed:", *(f"- {e}" for e in errors)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
