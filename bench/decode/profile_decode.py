#!/usr/bin/env python3
"""Where a decode call's time goes: per-kernel GPU durations of kvcc's paged
decode (the attention kernel and the split merge), torch SDPA's cuDNN
kernels and FlashInfer's tensor-core decode on the same data, from the
PyTorch profiler (CUPTI activity records, no hardware counters).

For each shape it runs every implementation `--calls` times back to back
under torch.profiler and prints, per implementation, each kernel's name,
launches per call and median duration, and the median span of one call
(first kernel start to last kernel end, gaps included). The span minus the
kernels' sum is the time the GPU spent between them (launch gaps, the
merge waiting on the attention kernel's last blocks).

The calls run back to back on one copy of the data, so below about 50 MB
of K+V (batch 1 up to 8K on the H200) part of each call's data is still in
L2 from the call before, cuDNN's more than kvcc's (session 30,
bench/results/decode_ab/README.md): compare such shapes' kernels with that
in mind, and their end-to-end times with ab_decode.py --rotate.

Usage (on the GPU machine, after run_on_device.sh's builds):
  python3 bench/decode/profile_decode.py --lib-dir build-gpu/lib \
      [--shape 32/8:16x4096 ...] [--json FILE]
"""
import argparse
import json
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_decode as bd  # noqa: E402

DEFAULT_SHAPES = ["32/8:1x32768", "64/8:1x32768", "32/8:16x4096",
                  "64/8:16x4096", "64/8:128x2048", "32/8:16x32768"]


def parse_shape(text):
    heads, dims = text.split(":")
    hq, hkv = (int(x) for x in heads.split("/"))
    batch, seq = (int(x) for x in dims.lower().split("x"))
    return hq, hkv, batch, seq


def kernel_events(prof):
    """GPU kernel records of a profile, in start order."""
    events = [e for e in prof.events()
              if e.device_type == torch.autograd.DeviceType.CUDA
              and e.name not in ("Memset", "Memcpy")]
    return sorted(events, key=lambda e: e.time_range.start)


def profile_calls(fn, calls):
    """Per-kernel median durations and the median span of one call."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(int(2e6))  # let the host queue ahead of the GPU
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    events = [e for e in kernel_events(prof) if "sleep" not in e.name.lower()]
    if not events or len(events) % calls:
        return {"error": f"{len(events)} kernels for {calls} calls"}
    per_call = len(events) // calls
    kernels, spans = [], []
    for i in range(per_call):
        durations = [events[c * per_call + i].time_range.elapsed_us()
                     for c in range(calls)]
        kernels.append({"name": events[i].name[:90],
                        "us": statistics.median(durations)})
    for c in range(calls):
        first, last = events[c * per_call], events[c * per_call + per_call - 1]
        spans.append(last.time_range.end - first.time_range.start)
    gaps = [events[c * per_call].time_range.start -
            events[(c - 1) * per_call + per_call - 1].time_range.end
            for c in range(1, calls)]
    return {"kernels": kernels, "span_us": statistics.median(spans),
            "gap_to_next_call_us": statistics.median(gaps) if gaps else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", required=True)
    ap.add_argument("--shape", action="append",
                    help="Hq/Hkv:BxS (repeatable); default: "
                         + " ".join(DEFAULT_SHAPES))
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--page", type=int, default=16)
    ap.add_argument("--no-flashinfer", action="store_true")
    ap.add_argument("--scores", action="store_true",
                    help="also profile kvrt_attention_launch with and without "
                         "the per-key score hook (kvcc_api, kvcc_api_scored)")
    ap.add_argument("--variant", choices=bd.VARIANT_NAMES,
                    help="page-16 kernels of this bench_kernels.cu variant "
                         "for every kvcc row (the resident-table call and the "
                         "API calls), e.g. l2scores: the hook's values kept "
                         "in L2; scorenormal: plain hook stores")
    ap.add_argument("--json")
    ap.add_argument("--plain", action="store_true",
                    help="run each implementation --calls times without the "
                         "profiler (for an outside profiler such as ncu)")
    args = ap.parse_args()
    torch.manual_seed(0)
    kvrt = bd.Kvrt(args.lib_dir)
    if args.variant:
        kvrt.bench.kvcc_bench_set_variant(
            bd.VARIANT_NAMES.index(args.variant) + 1)
    fi = None
    if not args.no_flashinfer:
        try:
            fi = bd.FlashInfer()
        except Exception as ex:  # optional
            print(f"FlashInfer not run: {ex}")
    results = []
    d = bd.HEAD_DIM
    for text in args.shape or DEFAULT_SHAPES:
        hq, hkv, B, S = parse_shape(text)
        q = torch.randn(B, hq, 1, d, device="cuda", dtype=torch.float16)
        k = torch.randn(B, hkv, S, d, device="cuda", dtype=torch.float16)
        v = torch.randn(B, hkv, S, d, device="cuda", dtype=torch.float16)
        scale = 1.0 / math.sqrt(d)
        ref = bd.reference(q, k, v)
        qk = q.transpose(1, 2).contiguous()
        out = torch.empty_like(qk)
        resident = bd.ResidentPages(kvrt, k, v, args.page)
        impls = {"kvcc": lambda: resident.attention(qk, out, scale)}
        err = bd.checked_run(impls["kvcc"], out, ref)
        if not err < bd.ERROR_BOUND:
            raise SystemExit(f"kvcc wrong at {text}: error {err}")

        if args.scores:
            paged = bd.PagedCache(kvrt, k, v, args.page)
            scores = torch.zeros(B, hkv, S, device="cuda", dtype=torch.float32)
            group = hq // hkv
            impls["kvcc_api"] = lambda: paged.attention(qk, out, group,
                                                        args.page, scale)
            impls["kvcc_api_scored"] = lambda: paged.attention_scored(
                qk, out, group, args.page, scale, scores, S)
            for name in ("kvcc_api", "kvcc_api_scored"):
                err = bd.checked_run(impls[name], out, ref)
                if not err < bd.ERROR_BOUND:
                    raise SystemExit(f"{name} wrong at {text}: error {err}")

        def cudnn():
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        impls["cudnn"] = cudnn
        if fi is not None:
            cache, indptr, indices, last = fi.pages(resident)
            wrapper = fi.wrappers["tc_", args.page]
            wrapper.plan(indptr, indices, last, hq, hkv, d, args.page,
                         pos_encoding_mode="NONE", q_data_type=q.dtype,
                         kv_data_type=cache.dtype, sm_scale=scale)
            fq = q[:, :, 0, :].contiguous()
            fout = torch.empty_like(fq)
            impls["flashinfer_tc"] = lambda: wrapper.run(fq, cache, out=fout)
        row = {"shape": text, "kv_bytes": 2 * B * hkv * S * d * 2}
        if args.plain:
            for fn in impls.values():
                for _ in range(args.calls):
                    fn()
            torch.cuda.synchronize()
            del q, k, v, qk, out, resident, ref
            impls.clear()
            continue
        for name, fn in impls.items():
            row[name] = profile_calls(fn, args.calls)
        print(f"== {text} ({row['kv_bytes'] / 1e6:.0f} MB of K+V)")
        for name in impls:
            r = row[name]
            if "error" in r:
                print(f"  {name}: {r['error']}")
                continue
            total = sum(kk["us"] for kk in r["kernels"])
            print(f"  {name}: span {r['span_us']:.1f} us, kernels {total:.1f} us"
                  f", gap to next call {r['gap_to_next_call_us']:.1f} us")
            for kk in r["kernels"]:
                print(f"    {kk['us']:8.1f} us  {kk['name']}")
        sys.stdout.flush()
        results.append(row)
        if args.scores:
            paged.close()
        del q, k, v, qk, out, resident, ref
        impls.clear()
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
