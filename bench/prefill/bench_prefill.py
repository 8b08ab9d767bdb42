#!/usr/bin/env python3
"""Causal prefill attention on the H200: kvcc's prefill body (paged cache,
through kvrt_attention_launch) against torch SDPA with the cuDNN and
FlashAttention backends (contiguous, enable_gqa=True), in one process on
the same random data.

For each shape: random Q/K/V with torch, K/V appended to a kvrt CUDA cache
(page 16) with kvrt_append, outputs poisoned with NaN, checked against a
float32 reference (SDPA math backend on float32 copies), then timed with
CUDA events (warm-ups, medians; bench/decode/bench_decode.py's time_ms);
the headline columns (kvcc, cuDNN, flash) are then timed again in turns
(bench_decode.py's interleaved_ms) and report those times, the alone
times kept in the JSON as NAME_ms_alone.
TFLOP/s counts the causal half: 4 * B * Hq * S^2 * D / 2 / time.

Usage (on the GPU machine, after building libkvrt.so and libkvcc_bench.so,
see bench/decode/run_on_device.sh):
  python3 bench/prefill/bench_prefill.py --lib-dir build-gpu/lib --out DIR
"""
import argparse
import ctypes
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "decode"))
from bench_decode import (KVRT_DTYPE_F16, Kvrt, PagedCache,  # noqa: E402
                          ResidentPages, checked_run, interleaved_ms,
                          rel_error, time_ms)

KVRT_DTYPE_BF16 = 1
# (B, S) of ANCHORS.md's prefill table, plus a shorter chunk.
SHAPES = [(1, 8192), (4, 4096), (8, 1024)]
GQA = [(32, 8)]
HEAD_DIM = 128
PAGE = 16
# bf16 outputs: relative L2 error against the float32 reference; the GPU
# tests' bound for bf16.
ERROR_BOUND = {"bf16": 1.6e-2, "f16": 2e-3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", required=True)
    ap.add_argument("--out", default=".")
    ap.add_argument("--dtypes", default="bf16,f16")
    ap.add_argument("--variants", action="store_true",
                    help="also time bench_kernels.cu's prefill variants "
                         "(bf16: 32-key tiles, two blocks per SM, the wgmma "
                         "body in kernels without the mma.sync one whose "
                         "decode layout runs on CUDA cores or tensor cores; "
                         "the wgmma body alone with 64- or 128-key tiles "
                         "and the warp-specialized body alone with two or "
                         "three slots, the consumers taking turns or not, "
                         "launched directly over resident tables; "
                         "non-causal: the warp-specialized ones)")
    ap.add_argument("--shapes", default=None,
                    help="B x S shapes to time instead of ANCHORS.md's, e.g. "
                         "8x1024,8x2048 (comma-separated)")
    ap.add_argument("--chunks", default=None,
                    help="time causal prefill chunks after a cached prefix "
                         "instead, B x prefix x chunk, e.g. 1x7168x1024 "
                         "(comma-separated); writes prefill_chunks_h200."
                         "{json,md}")
    ap.add_argument("--non-causal", action="store_true",
                    help="time non-causal attention instead (every query sees "
                         "every key; FLOPs 4·B·Hq·S²·D); writes "
                         "prefill_h200_noncausal.{json,md}")
    args = ap.parse_args()
    causal = not args.non_causal
    torch.manual_seed(0)
    kvrt = Kvrt(args.lib_dir)
    if args.chunks:
        return run_chunks(args, kvrt)
    kvrt.lib.kvrt_sequence_truncate.argtypes = [
        ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p]
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, torch {torch.__version__}", flush=True)
    rows, failures = [], []
    for dname in args.dtypes.split(","):
        dtype = torch.bfloat16 if dname == "bf16" else torch.float16
        kdtype = KVRT_DTYPE_BF16 if dname == "bf16" else KVRT_DTYPE_F16
        for hq, hkv in GQA:
            group = hq // hkv
            kernel = kvrt.bench.kvcc_bench_prefill_kernel(kdtype, group,
                                                          int(causal))
            shapes = SHAPES if not args.shapes else [
                tuple(int(x) for x in shape.split("x"))
                for shape in args.shapes.split(",")]
            for B, S in shapes:
                q = torch.randn(B, hq, S, HEAD_DIM, device="cuda", dtype=dtype)
                k = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=dtype)
                v = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=dtype)
                flops = 4.0 * B * hq * S * S * HEAD_DIM / (2 if causal else 1)
                scale = 1.0 / math.sqrt(HEAD_DIM)
                with sdpa_kernel([SDPBackend.MATH]):
                    ref = F.scaled_dot_product_attention(
                        q.float(), k.float(), v.float(), is_causal=causal,
                        enable_gqa=True)
                row = dict(dtype=dname, hq=hq, hkv=hkv, B=B, S=S, d=HEAD_DIM,
                           page=PAGE, flops=flops)
                # kvcc and the anchors, timed again in turns once each
                # passed its check and was timed alone (retime_in_turns).
                headline = {}
                for name, backend in [("cudnn", SDPBackend.CUDNN_ATTENTION),
                                      ("flash", SDPBackend.FLASH_ATTENTION)]:
                    def sdpa(backend=backend):
                        with sdpa_kernel([backend]):
                            return F.scaled_dot_product_attention(
                                q, k, v, is_causal=causal, enable_gqa=True)
                    try:
                        row[f"{name}_err"] = rel_error(sdpa(), ref)
                        row[f"{name}_ms"] = time_ms(sdpa, reps=9, calls=3)
                        row[f"{name}_TFLOPs"] = flops / row[f"{name}_ms"] / 1e9
                        headline[name] = sdpa
                    except Exception as ex:  # report, keep going
                        row[f"{name}_error"] = str(ex)[:200]
                try:
                    cache = PagedCache(kvrt, k, v, PAGE, kdtype)
                    # kvcc: queries/outputs [B, S, Hq, d].
                    qk = q.transpose(1, 2).contiguous()
                    out = torch.empty_like(qk)
                    stream = torch.cuda.current_stream().cuda_stream

                    def fn():
                        cache.prefill(qk, out, S, scale, causal, kernel)
                    row["kvcc_plan"] = kvrt.plan(cache, S, hq, causal, kernel)
                    check_and_time(row, "kvcc", fn, out, ref, flops,
                                   ERROR_BOUND[dname], failures,
                                   f"{dname} B={B} S={S}")
                    retime_in_turns(row, dict(headline, kvcc=fn), flops)
                    # Writing the chunk into the cache (kvrt_append of
                    # all B x S tokens after truncating the sequences), the
                    # separate step the prefill kernel does not fuse.
                    kc = k.transpose(1, 2).contiguous()
                    vc = v.transpose(1, 2).contiguous()

                    def append():
                        for i in range(B):
                            kvrt.check(kvrt.lib.kvrt_sequence_truncate(
                                cache.pool, cache.ids[i], 0, stream),
                                "kvrt_sequence_truncate")
                        kvrt.check(kvrt.lib.kvrt_append(
                            cache.cache, B, cache.ids, S, kc.data_ptr(),
                            vc.data_ptr(), stream), "kvrt_append")
                    row["append_ms"] = time_ms(append, reps=5, calls=1)
                    # The cache holds the same tokens again: check it.
                    aerr = checked_run(fn, out, ref)
                    if not aerr < ERROR_BOUND[dname]:
                        failures.append(f"kvcc after append {dname} B={B} "
                                        f"S={S}: error {aerr}")
                    del kc, vc
                    # The 64-row wgmma body (what kernels compiled for
                    # 128-thread blocks run on sm_90: KVRT_PREFILL_WS=0) and
                    # the mma.sync body (what GPUs before sm_90 run:
                    # KVRT_PREFILL_WGMMA=0) on the same launch.
                    for knob, key in [("KVRT_PREFILL_WS", "wgmma64"),
                                      ("KVRT_PREFILL_WGMMA", "mmasync")]:
                        previous = os.environ.get(knob)
                        os.environ[knob] = "0"
                        try:
                            check_and_time(row, f"kvcc_{key}", fn, out, ref,
                                           flops, ERROR_BOUND[dname], failures,
                                           f"{dname} B={B} S={S}")
                        finally:
                            # Back to the caller's setting (a
                            # KVRT_PREFILL_WS=1 run forces the kvcc column).
                            if previous is None:
                                del os.environ[knob]
                            else:
                                os.environ[knob] = previous
                    if S <= 1024:
                        # The per-token layout (decode body, one block per
                        # query token) that prefill chunks took before.
                        os.environ["KVRT_PREFILL_LAYOUT"] = "0"
                        try:
                            row["kvcc_per_token_err"] = checked_run(fn, out,
                                                                    ref)
                            ms = time_ms(fn, reps=3, calls=1, warm=1)
                            row["kvcc_per_token_TFLOPs"] = flops / ms / 1e9
                        finally:
                            del os.environ["KVRT_PREFILL_LAYOUT"]
                    if (args.variants and causal and dname == "bf16" and
                            group == 4):
                        for variant, vname in [(1, "keys32"), (2, "2blocks"),
                                               (3, "simtdecode"),
                                               (4, "nommasync")]:
                            kvrt.bench.kvcc_bench_set_prefill_variant(variant)
                            kernel = kvrt.bench.kvcc_bench_prefill_kernel(
                                kdtype, group, 1)
                            check_and_time(row, f"kvcc_{vname}", fn, out,
                                           ref, flops, ERROR_BOUND[dname],
                                           failures, f"B={B} S={S}")
                        kvrt.bench.kvcc_bench_set_prefill_variant(0)
                        kernel = kvrt.bench.kvcc_bench_prefill_kernel(
                            kdtype, group, 1)
                    if args.variants and dname == "bf16" and group == 4:
                        # The wgmma body alone, launched directly over
                        # resident tables (random page order) with the
                        # shared memory its tile size needs: 64-key tiles
                        # at three blocks per SM (the control) and 128-key
                        # tiles at two; "direct" is the emitted kernel
                        # through the same launcher (64-row blocks); ws3o,
                        # ws3or and ws3o128 the warp-specialized body with
                        # three slots of 64-key tiles (168 or 240
                        # registers) or of 128-key tiles (240); directws the
                        # emitted kernel on 128-row blocks (kvrt's three
                        # slots of 128-key tiles at 240, the body alone in
                        # ws3o128 without turns), ws2o128 two slots,
                        # ws2t128 two with the consumers taking turns;
                        # ws3p128 / ws3pt128 the body alone on a persistent
                        # grid without / with turns (directws: kvrt's),
                        # ws3t128 one item per block with turns, ws2p192
                        # persistent with two slots of 192-key tiles.
                        # Non-causal: the warp-specialized ones with
                        # 128-key tiles.
                        pages = ResidentPages(kvrt, k, v, PAGE)
                        variants = [(0, "direct"), (1, "keys64"),
                                    (2, "keys128"), (3, "ws3o"),
                                    (4, "ws3or"), (5, "ws3o128"),
                                    (6, "directws"), (7, "ws2o128"),
                                    (8, "ws2t128"), (9, "ws3p128"),
                                    (10, "ws3pt128"), (11, "ws3t128"),
                                    (12, "ws2p192")]
                        if not causal:
                            variants = variants[5:]
                        for variant, vname in variants:
                            def dfn(variant=variant):
                                status = kvrt.bench.kvcc_bench_prefill_direct(
                                    variant, pages.pool.data_ptr(),
                                    2 * PAGE * HEAD_DIM * 2,
                                    pages.indptr.data_ptr(),
                                    pages.kv_lens.data_ptr(),
                                    pages.indices.data_ptr(), qk.data_ptr(),
                                    out.data_ptr(), B, S, hq, hkv, scale,
                                    int(causal), stream)
                                if status != 0:
                                    raise RuntimeError(
                                        f"kvcc_bench_prefill_direct: CUDA "
                                        f"error {status}")
                            check_and_time(row, f"kvcc_{vname}", dfn, out,
                                           ref, flops, ERROR_BOUND[dname],
                                           failures, f"B={B} S={S}")
                        del pages
                    cache.close()
                    del cache, qk, out
                except Exception as ex:  # report, keep going
                    failures.append(f"kvcc {dname} B={B} S={S}: {ex}")
                finish_row(row, rows, ("cudnn", "flash"))
                del q, k, v, ref
                torch.cuda.empty_cache()
    stem = "prefill_h200" if causal else "prefill_h200_noncausal"
    write_json(args.out, stem, props, rows, failures, causal=causal)
    flops_text = "4·B·Hq·S²·D/2" if causal else "4·B·Hq·S²·D"
    lines = [("# Causal" if causal else "# Non-causal") +
             " prefill attention on " + props.name, "",
             "GQA 32/8, d=128; kvcc: paged cache (page 16) through "
             "kvrt_attention_launch (prefill layout); cuDNN/flash: torch SDPA "
             "on contiguous tensors, enable_gqa=True. TFLOP/s = " + flops_text +
             " / time; kvcc, cuDNN and flash timed in turns (interleaved reps "
             "in rotating order, medians). Ratio = kvcc TFLOP/s / cuDNN "
             "TFLOP/s. On sm_90a kvcc "
             "runs its warp-specialized body (attention_prefill_ws.cuh; a "
             "persistent grid, a block per SM taking 128-row tiles in rounds) "
             "where the rows see at least 512 keys on average "
             "(kPrefillWsMinMeanKeys), else its 64-row wgmma body (kvcc "
             "body: what kvrt_attention_plan reports); wgmma64 is that body "
             "everywhere in the same kernel (KVRT_PREFILL_WS=0; what kernels "
             "compiled for 128-thread blocks run), mma.sync its "
             "mma.sync body "
             "(KVRT_PREFILL_WGMMA=0, what GPUs before sm_90 run); append ms: "
             "kvrt_append of the B x S chunk's K/V into the paged cache (a "
             "separate step).", "",
             "| dtype | B | S | kvcc body | kvcc ms | cuDNN ms | flash ms | "
             "kvcc TFLOP/s | cuDNN TFLOP/s | flash TFLOP/s | vs cuDNN | "
             "kvcc err | kvcc wgmma64 TFLOP/s | kvcc mma.sync TFLOP/s | "
             "append ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['B']} | {r['S']} | "
            f"{body(r.get('kvcc_plan'))} | {cell(r, 'kvcc_ms', '.3f')} | "
            f"{cell(r, 'cudnn_ms', '.3f')} | {cell(r, 'flash_ms', '.3f')} | "
            f"{cell(r, 'kvcc_TFLOPs', '.0f')} | "
            f"{cell(r, 'cudnn_TFLOPs', '.0f')} | "
            f"{cell(r, 'flash_TFLOPs', '.0f')} | "
            f"{cell(r, 'speedup_vs_cudnn', '.2f')} | "
            f"{cell(r, 'kvcc_err', '.1e')} | "
            f"{cell(r, 'kvcc_wgmma64_TFLOPs', '.0f')} | "
            f"{cell(r, 'kvcc_mmasync_TFLOPs', '.0f')} | "
            f"{cell(r, 'append_ms', '.3f')} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, stem + ".md"), "w") as f:
        f.write(text)
    print(text)
    if failures:
        print("CORRECTNESS FAILURES:", *failures, sep="\n  ")
        sys.exit(1)


def check_and_time(row, key, fn, out, ref, flops, bound, failures, where):
    """Runs `fn` once on NaN-poisoned `out` and records its error against
    `ref` as row[KEY_err]; when within `bound`, times it (row[KEY_ms],
    row[KEY_TFLOPs]), else adds a failure naming `where`."""
    err = checked_run(fn, out, ref)
    row[f"{key}_err"] = err
    if not err < bound:
        failures.append(f"{key} {where}: error {err}")
        return
    row[f"{key}_ms"] = time_ms(fn, reps=9, calls=3)
    row[f"{key}_TFLOPs"] = flops / row[f"{key}_ms"] / 1e9


def retime_in_turns(row, fns, flops):
    """Replaces row[NAME_ms] / row[NAME_TFLOPs] of the fns (name -> fn) that
    were timed alone with interleaved_ms's times (the headline columns and
    speedup_vs_*), keeping the alone times as row[NAME_ms_alone]."""
    fns = {name: fn for name, fn in fns.items() if f"{name}_ms" in row}
    if len(fns) < 2:
        return
    for name, ms in interleaved_ms(fns, reps=9, calls=3, warm=3).items():
        row[f"{name}_ms_alone"] = row[f"{name}_ms"]
        row[f"{name}_ms"] = ms
        row[f"{name}_TFLOPs"] = flops / ms / 1e9


def cell(row, key, fmt):
    """A markdown table cell: row[key] formatted, or n/a."""
    return format(row[key], fmt) if key in row else "n/a"


def finish_row(row, rows, anchors):
    """Adds speedup_vs_<anchor> (anchor time over kvcc's) where both were
    timed, prints the row as a JSON line and appends it to `rows`."""
    for anchor in anchors:
        if f"{anchor}_ms" in row and "kvcc_ms" in row:
            row[f"speedup_vs_{anchor}"] = row[f"{anchor}_ms"] / row["kvcc_ms"]
    print(json.dumps(row), flush=True)
    rows.append(row)


def write_json(out, stem, props, rows, failures, **extra):
    """Writes OUT/STEM.json: the device, torch, the error bounds, the
    failures and the rows (and `extra` fields)."""
    result = dict(device=props.name, torch=torch.__version__, **extra,
                  error_bound=ERROR_BOUND, failures=failures, rows=rows)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump(result, f, indent=1)


def body(plan):
    """The prefill body a kvrt_attention_plan dict names (sm_90a)."""
    if not plan:
        return "n/a"
    return {0: "decode", 64: "64-row", 128: "warp-specialized"}.get(
        plan["query_tile_rows"], str(plan["query_tile_rows"]))


def chunk_reference(q, k, v, causal=True):
    """Float32 attention of the chunk's queries q [B, Hq, C, d] over keys
    k/v [B, Hkv, S, d] (S = prefix + C), one sequence at a time: causal,
    query t sees keys 0 .. S - C + t (the mask aligned at the bottom
    right); else every key."""
    B, hq, C, d = q.shape
    S, group = k.shape[2], hq // k.shape[1]
    visible = (torch.arange(S, device=q.device)[None, :] <=
               torch.arange(C, device=q.device)[:, None] + (S - C))
    out = torch.empty(B, hq, C, d, device=q.device, dtype=torch.float32)
    for b in range(B):
        kb = k[b].float().repeat_interleave(group, dim=0)
        vb = v[b].float().repeat_interleave(group, dim=0)
        scores = q[b].float() @ kb.transpose(1, 2) / math.sqrt(d)
        if causal:
            scores.masked_fill_(~visible, float("-inf"))
        out[b] = torch.softmax(scores, dim=-1) @ vb
        del kb, vb, scores
    return out


def run_chunks(args, kvrt):
    """Chunked prefill: B sequences whose caches hold `prefix` tokens and
    the chunk's `chunk` tokens (appended first, as a serving engine does);
    the chunk's queries attend causally over all of them. kvcc through
    kvrt_attention_launch with the runtime's choice of body and each body
    forced (KVRT_PREFILL_WS=1, =0); torch SDPA's FlashAttention backend on
    contiguous tensors with causal_lower_right's mask (checked against the
    reference like kvcc)."""
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, torch {torch.__version__}", flush=True)
    rows, failures = [], []
    hq, hkv = GQA[0]
    group = hq // hkv
    shapes = [tuple(int(x) for x in c.split("x"))
              for c in args.chunks.split(",")]
    for dname in args.dtypes.split(","):
        dtype = torch.bfloat16 if dname == "bf16" else torch.float16
        kdtype = KVRT_DTYPE_BF16 if dname == "bf16" else KVRT_DTYPE_F16
        kernel = kvrt.bench.kvcc_bench_prefill_kernel(kdtype, group, 1)
        for B, P, C in shapes:
            S = P + C
            q = torch.randn(B, hq, C, HEAD_DIM, device="cuda", dtype=dtype)
            k = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=dtype)
            v = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=dtype)
            # Query t sees P + t + 1 keys.
            flops = 4.0 * B * hq * HEAD_DIM * (C * P + C * (C + 1) / 2)
            scale = 1.0 / math.sqrt(HEAD_DIM)
            ref = chunk_reference(q, k, v)
            row = dict(dtype=dname, hq=hq, hkv=hkv, B=B, prefix=P, chunk=C,
                       d=HEAD_DIM, page=PAGE, flops=flops)
            # SDPA refuses is_causal when the lengths differ (its mask is
            # aligned at the top left); causal_lower_right's bias runs
            # FlashAttention's causal kernel, aligned at the bottom right.
            # Where it takes no GQA, K/V are repeated per query head.
            mask = causal_lower_right(C, S)
            headline = {}
            for gqa in (True, False):
                kk, vv = (k, v) if gqa else (
                    k.repeat_interleave(group, dim=1),
                    v.repeat_interleave(group, dim=1))
                def flash(kk=kk, vv=vv, gqa=gqa):
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                        return F.scaled_dot_product_attention(
                            q, kk, vv, attn_mask=mask, enable_gqa=gqa)
                try:
                    row["flash_err"] = rel_error(flash(), ref)
                    if not row["flash_err"] < ERROR_BOUND[dname]:
                        raise RuntimeError(
                            f"error {row['flash_err']:.2e} against the "
                            f"reference")
                    row["flash_ms"] = time_ms(flash, reps=9, calls=3)
                    row["flash_TFLOPs"] = flops / row["flash_ms"] / 1e9
                    row["flash_gqa"] = gqa
                    row.pop("flash_error", None)
                    headline["flash"] = flash
                    break
                except Exception as ex:  # report, keep going
                    row["flash_error"] = str(ex)[:200]
                finally:
                    del kk, vv
            try:
                cache = PagedCache(kvrt, k, v, PAGE, kdtype)
                qk = q.transpose(1, 2).contiguous()
                out = torch.empty_like(qk)

                def fn():
                    cache.prefill(qk, out, C, scale, True, kernel)
                try:
                    for knob, key in [(None, "kvcc"), ("1", "kvcc_ws"),
                                      ("0", "kvcc_wgmma64")]:
                        os.environ.pop("KVRT_PREFILL_WS", None)
                        if knob is not None:
                            os.environ["KVRT_PREFILL_WS"] = knob
                        row[f"{key}_plan"] = kvrt.plan(cache, C, hq, True,
                                                       kernel)
                        check_and_time(row, key, fn, out, ref, flops,
                                       ERROR_BOUND[dname], failures,
                                       f"{dname} B={B} P={P} C={C}")
                        if knob is None:
                            retime_in_turns(row, dict(headline, kvcc=fn),
                                            flops)
                finally:
                    # Never let a forced body leak into the next shape's
                    # "runtime's choice" column.
                    os.environ.pop("KVRT_PREFILL_WS", None)
                    cache.close()
                del cache, qk, out
            except Exception as ex:  # report, keep going
                failures.append(f"kvcc {dname} B={B} P={P} C={C}: {ex}")
            finish_row(row, rows, ("flash",))
            del q, k, v, ref
            torch.cuda.empty_cache()
    write_json(args.out, "prefill_chunks_h200", props, rows, failures)
    lines = ["# Prefill chunks after a cached prefix on " + props.name, "",
             "GQA 32/8, d=128, causal; B sequences hold prefix + chunk tokens "
             "in kvcc's paged cache (page 16); the chunk's queries see the "
             "prefix and the chunk up to themselves. TFLOP/s = "
             "4·B·Hq·D·(C·P + C(C+1)/2) / time (kvcc and flash timed in "
             "turns: interleaved reps in rotating order, medians; ws and "
             "wgmma64 alone). kvcc: the runtime's choice "
             "(warp-specialized body where rows see >= 512 keys on average, "
             "else the 64-row wgmma body; kvcc body: what "
             "kvrt_attention_plan reports); ws / wgmma64: each body forced "
             "(KVRT_PREFILL_WS=1 / 0). flash: torch SDPA's FlashAttention "
             "backend on contiguous tensors with causal_lower_right's mask "
             "(is_causal is aligned at the top left when the lengths differ "
             "and SDPA refuses it).", "",
             "| dtype | B | prefix | chunk | kvcc body | kvcc ms | "
             "kvcc TFLOP/s | ws TFLOP/s | wgmma64 TFLOP/s | flash TFLOP/s | "
             "vs flash | kvcc err |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['B']} | {r['prefix']} | {r['chunk']} | "
            f"{body(r.get('kvcc_plan'))} | {cell(r, 'kvcc_ms', '.3f')} | "
            f"{cell(r, 'kvcc_TFLOPs', '.0f')} | "
            f"{cell(r, 'kvcc_ws_TFLOPs', '.0f')} | "
            f"{cell(r, 'kvcc_wgmma64_TFLOPs', '.0f')} | "
            f"{cell(r, 'flash_TFLOPs', '.0f')} | {cell(r, 'speedup_vs_flash', '.2f')} | "
            f"{cell(r, 'kvcc_err', '.1e')} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "prefill_chunks_h200.md"), "w") as f:
        f.write(text)
    print(text)
    if failures:
        print("CORRECTNESS FAILURES:", *failures, sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
