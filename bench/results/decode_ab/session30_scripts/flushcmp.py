#!/usr/bin/env python3
"""Session 30: how the timing protocol moves kvcc's and cuDNN's decode
times. back_to_back: 10 calls between two events; per_call: one call
between events, nothing between calls; write_flush: zero_ of 256 MiB
before each call; read_flush: bench_decode.L2Flush (a sum over 256 MiB);
read_flush_1g: the same over 1 GiB; write_then_read: zero_ of 256 MiB then
L2Flush; rotate8: back to back over 8 copies of the cache (each call reads
a copy the previous 7 calls did not), as a model's layers do.
Run as run185.sh does: python3 flushcmp.py LIB_DIR OUT.json (from the
repository root; LIB_DIR a build_ab_libs.sh directory). Kept as run, with
the per-call flush timing that bench_decode.interleaved_ms had during the
session copied in (timed)."""
import json, math, statistics, sys
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
sys.path.insert(0, "bench/decode")
from bench_decode import (HEAD_DIM, Kvrt, ResidentPages, interleaved_ms,
                          reference, rel_error, checked_run)


class L2Flush:
    """The read flush of the session-30 runs (then in bench_decode.py): a
    sum over four times the L2 size, at least 256 MiB."""

    def __init__(self):
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        l2 = getattr(props, "L2_cache_size", 0) or (50 << 20)
        self.buffer = torch.ones(max(4 * l2, 256 << 20) // 4,
                                 dtype=torch.float32, device="cuda")

    def __call__(self):
        self.buffer.sum()


def timed(fns, flush=None, calls=10, reps=15):
    """bench_decode.interleaved_ms, with the session-30 flush argument:
    with `flush`, each call alone between events after flush()."""
    if flush is None:
        return interleaved_ms(fns, reps=reps, calls=calls)
    names = list(fns)
    for name in names:
        for _ in range(5):
            fns[name]()
    samples = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        if rep % 2:
            order.reverse()
        for name in order:
            torch.cuda._sleep(int(2e6))
            events = []
            for _ in range(calls):
                flush()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fns[name]()
                end.record()
                events.append((start, end))
            torch.cuda.synchronize()
            samples[name].append(
                statistics.mean(s.elapsed_time(e) for s, e in events))
    return {name: statistics.median(t) for name, t in samples.items()}

kvrt = Kvrt(sys.argv[1])
zbuf = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
rflush = L2Flush()
big = torch.ones(256 << 20, dtype=torch.float32, device="cuda")
modes = {"back_to_back": None, "per_call": lambda: None,
         "write_flush": lambda: zbuf.zero_(), "read_flush": rflush,
         "read_flush_1g": lambda: big.sum(),
         "write_then_read": lambda: (zbuf.zero_(), rflush())}
COPIES = 8
rows = []
for hq, hkv, B, S in [(32, 8, 1, 4096), (32, 8, 1, 8192), (32, 8, 1, 32768),
                      (32, 8, 16, 4096), (32, 8, 1, 131072)]:
    torch.manual_seed(0)
    q = torch.randn(B, hq, 1, HEAD_DIM, device="cuda", dtype=torch.float16)
    k = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=torch.float16)
    v = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=torch.float16)
    ref = reference(q, k, v)
    qk = q.transpose(1, 2).contiguous()
    scale = 1 / math.sqrt(HEAD_DIM)
    pages = [ResidentPages(kvrt, k, v, 16) for _ in range(COPIES)]
    kvs = [(k.clone(), v.clone()) for _ in range(COPIES)]
    out = torch.empty_like(qk)
    kv = lambda: pages[0].attention(qk, out, scale)
    err = checked_run(kv, out, ref)
    def cudnn(i=0):
        kk, vv = kvs[i]
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(q, kk, vv, enable_gqa=True)
    row = {"hq": hq, "hkv": hkv, "B": B, "S": S, "err": err,
           "cudnn_err": rel_error(cudnn(), ref)}
    for mode, flush in modes.items():
        ms = timed({"kvcc": kv, "cudnn": cudnn}, flush=flush)
        row[mode] = ms
        print(f"{hq}/{hkv} {B}x{S} {mode:15s} kvcc {ms['kvcc']:.4f} cudnn "
              f"{ms['cudnn']:.4f} ratio {ms['cudnn'] / ms['kvcc']:.3f}", flush=True)
    turn = {"kvcc": 0, "cudnn": 0}
    def kv_rot():
        turn["kvcc"] = (turn["kvcc"] + 1) % COPIES
        pages[turn["kvcc"]].attention(qk, out, scale)
    def cudnn_rot():
        turn["cudnn"] = (turn["cudnn"] + 1) % COPIES
        return cudnn(turn["cudnn"])
    ms = timed({"kvcc": kv_rot, "cudnn": cudnn_rot}, calls=16)
    row["rotate8"] = ms
    print(f"{hq}/{hkv} {B}x{S} {'rotate8':15s} kvcc {ms['kvcc']:.4f} cudnn "
          f"{ms['cudnn']:.4f} ratio {ms['cudnn'] / ms['kvcc']:.3f}", flush=True)
    rows.append(row)
    del pages, kvs, q, k, v, qk, out, ref
    torch.cuda.empty_cache()
json.dump(rows, open(sys.argv[2], "w"), indent=1)
