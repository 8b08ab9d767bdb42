#!/usr/bin/env python3
"""Decode attention on the H200: kvcc (paged, through kvrt's C API) against
torch SDPA with the cuDNN and FlashAttention backends (contiguous cache,
enable_gqa=True) and, where it can be imported, FlashInfer's paged
BatchDecodeWithPagedKVCacheWrapper (on kvrt's pages converted to its
layout), in one process on the same random data.

For every shape it builds K/V with torch, appends them to a kvrt CUDA cache
with kvrt_append (the paged copy of the same data), checks kvcc's and the
SDPA outputs against a float32 reference (outputs poisoned with NaN first)
and only then times everything with CUDA events: warm-ups, then a sleep
kernel so that the host queues the timed calls ahead of the GPU, then the
median over repetitions of back-to-back calls. The device's read bandwidth
(a streaming read kernel, kvcc_bench_read) and copy bandwidth (torch copy_,
read + write) are measured in the same run. Each implementation is also timed the way
ANCHORS.md times single calls (isolated_ms: one call between two events,
synchronized, so host dispatch counts). Options add the page-16 kernel
variants of bench_kernels.cu (--variants), forced split counts (--sweep),
a per-block timeline of one call (--block-times) and where the pages lie
in the pool (--page-order).

Usage (on the GPU machine, after building libkvrt.so and
libkvcc_bench.so, see run_on_device.sh):
  python3 bench/decode/bench_decode.py --lib-dir build-gpu/lib --out DIR
FlashInfer runs when `import flashinfer` works: from .device/flashinfer
(made by prepare_flashinfer.sh), `source bench/decode/flashinfer_env.sh`
first. Otherwise, or with --no-flashinfer, its results are null and the
reason is in the JSON's "flashinfer"; its failures are reported, not fatal.
"""
import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [(1, 32768), (1, 131072), (16, 4096), (16, 32768), (64, 8192),
          (128, 2048)]
GQA = [(32, 8), (64, 8)]
PAGES = [16, 64]
HEAD_DIM = 128
# fp16 outputs: relative L2 error against the float32 reference. Rounding
# the output to fp16 alone gives about 3e-4; 2e-3 is the GPU tests' bound.
ERROR_BOUND = 2e-3
KVRT_DEVICE_CUDA = 1
KVRT_DTYPE_F16 = 0


class CacheDesc(ctypes.Structure):
    _fields_ = [("num_kv_heads", ctypes.c_int32), ("head_dim", ctypes.c_int32),
                ("dtype", ctypes.c_int32), ("page_size", ctypes.c_int32),
                ("capacity", ctypes.c_int64)]


class PlanInfo(ctypes.Structure):
    """kvrt_attention_plan_info."""
    _fields_ = [("query_tile_rows", ctypes.c_int32),
                ("num_splits", ctypes.c_int32),
                ("pages_per_split", ctypes.c_int32),
                ("block_threads", ctypes.c_int32),
                ("shared_bytes", ctypes.c_int32),
                ("grid", ctypes.c_int32 * 3),
                ("tensor_copies", ctypes.c_int32),
                ("tensor_copy_runs", ctypes.c_int32)]


class Kvrt:
    """ctypes bindings of the parts of kvrt.h the benchmark uses."""

    def __init__(self, lib_dir):
        self.lib = ctypes.CDLL(os.path.join(lib_dir, "libkvrt.so"),
                               mode=ctypes.RTLD_GLOBAL)
        self.bench = ctypes.CDLL(os.path.join(lib_dir, "libkvcc_bench.so"))
        lib, vp, i32, i64 = self.lib, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        lib.kvrt_last_error.restype = ctypes.c_char_p
        lib.kvrt_pool_create.argtypes = [i32, i64, i64, ctypes.POINTER(vp)]
        lib.kvrt_pool_destroy.argtypes = [vp]
        lib.kvrt_cache_page_bytes.argtypes = [ctypes.POINTER(CacheDesc)]
        lib.kvrt_cache_page_bytes.restype = i64
        lib.kvrt_cache_create.argtypes = [vp, ctypes.POINTER(CacheDesc),
                                          ctypes.POINTER(vp)]
        lib.kvrt_sequence_create.argtypes = [vp, ctypes.POINTER(i32)]
        lib.kvrt_sequence_destroy.argtypes = [vp, i32]
        lib.kvrt_cache_destroy.argtypes = [vp]
        lib.kvrt_append.argtypes = [vp, i32, ctypes.POINTER(i32), i32, vp, vp, vp]
        lib.kvrt_attention_launch.argtypes = [
            vp, i32, ctypes.POINTER(i32), i32, i32, vp, vp, ctypes.c_float, i32,
            vp, i32, vp]
        lib.kvrt_attention_launch_scored.argtypes = [
            vp, i32, ctypes.POINTER(i32), i32, i32, vp, vp, ctypes.c_float, i32,
            vp, i32, vp, i64, vp]
        lib.kvrt_attention_plan.argtypes = [
            vp, i32, ctypes.POINTER(i32), i32, i32, i32, vp, i32, i32,
            ctypes.POINTER(PlanInfo)]
        self.bench.kvcc_bench_kernel.restype = vp
        self.bench.kvcc_bench_kernel.argtypes = [ctypes.c_int, ctypes.c_int]
        self.bench.kvcc_bench_set_variant.argtypes = [ctypes.c_int]
        self.bench.kvcc_bench_prefill_kernel.restype = vp
        self.bench.kvcc_bench_prefill_kernel.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.bench.kvcc_bench_set_prefill_variant.argtypes = [ctypes.c_int]
        self.threads = self.bench.kvcc_bench_threads()
        u64p = ctypes.POINTER(ctypes.c_uint64)
        self.bench.kvcc_bench_block_times.argtypes = [
            u64p, u64p, ctypes.POINTER(ctypes.c_uint32), u64p, ctypes.c_int]
        self.bench.kvcc_bench_read.argtypes = [vp, i64, vp, vp]
        self.bench.kvcc_bench_launch_direct.argtypes = [
            vp, i64, vp, vp, vp, vp, vp, ctypes.c_int, ctypes.c_int,
            ctypes.c_int, ctypes.c_int, i64, ctypes.c_float, vp]
        self.bench.kvcc_bench_prefill_direct.argtypes = [
            ctypes.c_int, vp, i64, vp, vp, vp, vp, vp, ctypes.c_int,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_float,
            ctypes.c_int, vp]

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.kvrt_last_error().decode()}")

    def plan(self, cache, num_tokens, num_q_heads, causal, kernel,
             scored=False):
        """kvrt_attention_plan for a PagedCache's batch: the launch
        kvrt_attention_launch makes (layout, split, block), as a dict."""
        info = PlanInfo()
        self.check(self.lib.kvrt_attention_plan(
            cache.cache, cache.batch, cache.ids, num_tokens, num_q_heads,
            int(causal), kernel, self.threads, int(scored), ctypes.byref(info)),
            "kvrt_attention_plan")
        return dict(query_tile_rows=info.query_tile_rows,
                    num_splits=info.num_splits,
                    block_threads=info.block_threads,
                    shared_bytes=info.shared_bytes, grid=list(info.grid),
                    tensor_copies=info.tensor_copies,
                    tensor_copy_runs=info.tensor_copy_runs)


class PagedCache:
    """A kvrt CUDA pool and cache holding K/V [B, Hkv, S, d] as B sequences,
    sequence b the first lengths[b] tokens (all S without `lengths`), each
    appended at once. kvrt's allocator gives a fresh pool's pages out in
    order, so each sequence's rows lie on runs of consecutive pages; with
    `fragment` the pool's free pages are shuffled first (see
    shuffle_free_pages)."""

    def __init__(self, kvrt, k, v, page, dtype=KVRT_DTYPE_F16, fragment=False,
                 lengths=None):
        self.kvrt = kvrt
        B, Hkv, S, d = k.shape
        lengths = lengths or [S] * B
        desc = CacheDesc(Hkv, d, dtype, page, S)
        pages = sum(Hkv * ((n + page - 1) // page) for n in lengths) + 16
        self.pool = ctypes.c_void_p()
        kvrt.check(kvrt.lib.kvrt_pool_create(
            KVRT_DEVICE_CUDA, kvrt.lib.kvrt_cache_page_bytes(ctypes.byref(desc)),
            pages, ctypes.byref(self.pool)), "kvrt_pool_create")
        if fragment:
            self.shuffle_free_pages(desc, pages)
        self.cache = ctypes.c_void_p()
        kvrt.check(kvrt.lib.kvrt_cache_create(self.pool, ctypes.byref(desc),
                                              ctypes.byref(self.cache)),
                   "kvrt_cache_create")
        ids = []
        for _ in range(B):
            i = ctypes.c_int32()
            kvrt.check(kvrt.lib.kvrt_sequence_create(self.pool, ctypes.byref(i)),
                       "kvrt_sequence_create")
            ids.append(i.value)
        self.ids = (ctypes.c_int32 * B)(*ids)
        # kvrt_append takes [batch, tokens, kv_heads, head_dim].
        stream = torch.cuda.current_stream().cuda_stream
        for b, n in enumerate(lengths):
            kb = k[b, :, :n].transpose(0, 1).contiguous()
            vb = v[b, :, :n].transpose(0, 1).contiguous()
            one = (ctypes.c_int32 * 1)(ids[b])
            kvrt.check(kvrt.lib.kvrt_append(
                self.cache, 1, one, n, kb.data_ptr(),
                vb.data_ptr(), stream), "kvrt_append")
            torch.cuda.synchronize()
        self.batch = B
        # What a binding keeps between calls: the kernel (looked up once per
        # shape) and the stream (the bench uses torch's current one
        # throughout; asking torch for it costs ~9 us of Python per call).
        self.kernels = {}
        self.stream = stream

    def kernel(self, group, page):
        key = (group, page)
        if key not in self.kernels:
            self.kernels[key] = self.kvrt.bench.kvcc_bench_kernel(group, page)
        return self.kernels[key]

    def attention(self, q, out, group, page, scale, kernel=None):
        """One decode call; `kernel` defaults to the benchmark's d128 one."""
        kvrt = self.kvrt
        status = kvrt.lib.kvrt_attention_launch(
            self.cache, self.batch, self.ids, 1, q.shape[2], q.data_ptr(),
            out.data_ptr(), scale, 0, kernel or self.kernel(group, page),
            kvrt.threads, self.stream)
        kvrt.check(status, "kvrt_attention_launch")

    def prefill(self, q, out, num_tokens, scale, causal, kernel):
        """A chunk's call: the last `num_tokens` positions of every sequence
        attend (queries and outputs [B, num_tokens, Hq, d])."""
        kvrt = self.kvrt
        kvrt.check(kvrt.lib.kvrt_attention_launch(
            self.cache, self.batch, self.ids, num_tokens, q.shape[2],
            q.data_ptr(), out.data_ptr(), scale, int(causal), kernel,
            kvrt.threads, self.stream), "kvrt_attention_launch")

    def attention_scored(self, q, out, group, page, scale, scores, stride):
        """attention() with the per-key score hook (H2O's statistic)."""
        kvrt = self.kvrt
        status = kvrt.lib.kvrt_attention_launch_scored(
            self.cache, self.batch, self.ids, 1, q.shape[2], q.data_ptr(),
            out.data_ptr(), scale, 0, self.kernel(group, page), kvrt.threads,
            scores.data_ptr(), stride, self.stream)
        kvrt.check(status, "kvrt_attention_launch_scored")

    def shuffle_free_pages(self, desc, pages):
        """Leaves the pool's `pages` free pages in random order on its free
        list, as a pool after much allocation and release: each page goes
        to a one-token sequence of a one-head cache on the pool (one page
        each), and the sequences are destroyed in random order."""
        kvrt = self.kvrt
        one = CacheDesc(1, desc.head_dim, desc.dtype, desc.page_size,
                        desc.page_size)
        filler = ctypes.c_void_p()
        kvrt.check(kvrt.lib.kvrt_cache_create(self.pool, ctypes.byref(one),
                                              ctypes.byref(filler)),
                   "kvrt_cache_create")
        ids = []
        for _ in range(pages):
            i = ctypes.c_int32()
            kvrt.check(kvrt.lib.kvrt_sequence_create(self.pool,
                                                     ctypes.byref(i)),
                       "kvrt_sequence_create")
            ids.append(i.value)
        dtype = torch.float16 if desc.dtype == KVRT_DTYPE_F16 else torch.bfloat16
        zeros = torch.zeros(pages, 1, 1, desc.head_dim, device="cuda",
                            dtype=dtype)
        kvrt.check(kvrt.lib.kvrt_append(
            filler, pages, (ctypes.c_int32 * pages)(*ids), 1,
            zeros.data_ptr(), zeros.data_ptr(),
            torch.cuda.current_stream().cuda_stream), "kvrt_append")
        torch.cuda.synchronize()
        generator = torch.Generator().manual_seed(1)
        for j in torch.randperm(pages, generator=generator).tolist():
            kvrt.check(kvrt.lib.kvrt_sequence_destroy(self.pool, ids[j]),
                       "kvrt_sequence_destroy")
        kvrt.check(kvrt.lib.kvrt_cache_destroy(filler), "kvrt_cache_destroy")

    def close(self):
        self.kvrt.lib.kvrt_pool_destroy(self.pool)


PAGE_ORDERS = ("random", "row", "token", "window", "heads")
# "window" order: the pool's pages shuffled within windows of this many
# bytes (the 2 MiB of a GPU large page: cudaMalloc's granularity).
WINDOW_BYTES = 2 << 20


def page_permutation(rows, per_row, order, page_bytes=0, heads=1):
    """Pool page of page j of row r (flattened r * per_row + j): "random" a
    random permutation (a pool after much allocation and release), "row"
    each row's pages consecutive, "token" page j of every row before page
    j + 1 of any (what a fresh pool hands out to a batch decoding in step:
    a row's pages `rows` apart), "window" the row order shuffled within
    windows of WINDOW_BYTES of `page_bytes` pages, counted from the pool's
    start (as random as "random" below that size, each window read whole:
    what separates "random" from "row" by the span of memory a row's reads
    cover; torch aligns the pool to 512 bytes at least, so a window may
    straddle two 2 MiB large pages),
    "heads" page j of a sequence's `heads` rows (r = sequence * heads +
    head) side by side, these groups in random order (as a pool after much
    allocation and release where each append takes a sequence's kv heads'
    pages together)."""
    n = rows * per_row
    if order == "random":
        return torch.randperm(n, device="cuda")
    index = torch.arange(n, device="cuda")
    if order == "row":
        return index
    if order == "window":
        if page_bytes <= 0:
            raise ValueError("window order needs the page size in bytes")
        w = max(1, WINDOW_BYTES // page_bytes)
        # Sorted by window, then randomly within it: position i's pool
        # page lies in i's own window.
        return torch.argsort((index // w) * n + torch.randperm(n, device="cuda"))
    if order == "heads":
        r, j = index // per_row, index % per_row
        groups = torch.randperm(n // heads, device="cuda")
        return groups[(r // heads) * per_row + j] * heads + r % heads
    return (index % per_row) * rows + index // per_row


class ResidentPages:
    """The same K/V in kvrt's page format ([K page, V page] per page), pages
    in PAGE_ORDER (random unless --page-order says otherwise), with CSR
    tables that stay on the device: what the kernel reads once tables are
    resident instead of rebuilt per call."""

    order = "random"

    def __init__(self, kvrt, k, v, page):
        self.kvrt = kvrt
        B, Hkv, S, d = k.shape
        assert S % page == 0
        rows, per_row = B * Hkv, S // page
        perm = page_permutation(rows, per_row, self.order,
                                2 * page * d * k.element_size(), Hkv)
        self.pool = torch.empty(rows * per_row, 2, page, d, dtype=k.dtype,
                                device="cuda")
        self.pool[perm.view(rows, per_row)] = torch.stack(
            [k.reshape(rows, per_row, page, d), v.reshape(rows, per_row, page, d)],
            dim=2)
        self.indptr = (torch.arange(rows + 1, device="cuda") * per_row).int()
        self.kv_lens = torch.full((rows,), S, dtype=torch.int32, device="cuda")
        self.indices = perm.int()
        self.shape = (B, Hkv, S, page)
        self.stream = torch.cuda.current_stream().cuda_stream  # as PagedCache

    def attention(self, q, out, scale):
        B, Hkv, S, page = self.shape
        status = self.kvrt.bench.kvcc_bench_launch_direct(
            self.pool.data_ptr(), 2 * page * 128 * 2, self.indptr.data_ptr(),
            self.kv_lens.data_ptr(), self.indices.data_ptr(), q.data_ptr(),
            out.data_ptr(), B, q.shape[2], Hkv, page, S, scale, self.stream)
        self.kvrt.check(status, "kvcc_bench_launch_direct")


class FlashInfer:
    """FlashInfer's BatchDecodeWithPagedKVCacheWrapper (backend fa2, NHD) on
    kvrt's pages: its CUDA-core decode kernel (use_tensor_cores=False, the
    wrapper's default) and its tensor-core one (True). Optional: on the GPU
    machine it comes from .device/flashinfer (bench/decode/
    prepare_flashinfer.sh, installed by flashinfer_env.sh) with prebuilt
    modules; the constructor raises when FlashInfer cannot be imported."""

    VARIANTS = [("", False), ("tc_", True)]  # key prefix, use_tensor_cores

    def __init__(self):
        import flashinfer
        self.version = flashinfer.__version__
        # One wrapper per kernel and page size, so that a shape's planned
        # calls at both page sizes can be timed again in turns.
        self.wrappers = {}
        for prefix, tensor_cores in self.VARIANTS:
            for page in PAGES:
                # FlashInfer's recommended 128 MB split-k workspace, zeroed.
                workspace = torch.zeros(128 << 20, dtype=torch.uint8,
                                        device="cuda")
                self.wrappers[prefix, page] = (
                    flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                        workspace, "NHD", use_tensor_cores=tensor_cores,
                        backend="fa2"))
        # Its own generator for the page order: the global one draws the
        # benchmark's data, which must not change with FlashInfer on or off.
        self.generator = torch.Generator().manual_seed(1)

    def describe(self):
        return (f"flashinfer {self.version} BatchDecodeWithPagedKVCacheWrapper "
                "(backend fa2, NHD, enable_pdl default) on kvrt's pages "
                "converted to [pages, 2, page, Hkv, d] in a random page order: "
                "flashinfer_p{16,64} its CUDA-core decode "
                "(use_tensor_cores=False), flashinfer_tc_p{16,64} its "
                "tensor-core decode (True); plan() once, run() timed")

    def pages(self, resident):
        """kvrt's page pool (ResidentPages: per (sequence, kv head) page,
        `page` key rows then `page` value rows) in FlashInfer's NHD layout:
        a page holds `page` tokens of one sequence for all kv heads, K then V
        ([num_pages, 2, page, Hkv, d]), pages in a random order, with its
        CSR page table (indptr, indices, last_page_len)."""
        B, Hkv, S, page = resident.shape
        per_seq = S // page
        # kvrt's page j of (b, h) is pool[indices[(b * Hkv + h) * per_seq + j]].
        src = resident.pool[resident.indices.long().view(B, Hkv, per_seq)]
        perm = torch.randperm(B * per_seq, generator=self.generator).cuda()
        cache = torch.empty(B * per_seq, 2, page, Hkv, src.shape[-1],
                            dtype=src.dtype, device="cuda")
        # [B, Hkv, per_seq, 2, page, d] -> [B, per_seq, 2, page, Hkv, d]
        cache[perm] = src.permute(0, 2, 3, 4, 1, 5).reshape(cache.shape)
        del src
        indptr = (torch.arange(B + 1, device="cuda") * per_seq).int()
        last_page_len = torch.full((B,), page, dtype=torch.int32, device="cuda")
        return cache, indptr, perm.int(), last_page_len

    def measure(self, row, q, ref, page, pages, scale, failures):
        """Plans once per variant, checks the output against `ref` (poisoned
        first) and times run(); fills row[flashinfer_{,tc_}p{page}_*] and
        returns {key: run} of the variants that passed."""
        cache, indptr, indices, last_page_len = pages
        B, hq, _, d = q.shape
        hkv = cache.shape[3]
        fq = q[:, :, 0, :].contiguous()  # [B, Hq, d]
        passed = {}
        for prefix, _ in self.VARIANTS:
            key = f"flashinfer_{prefix}p{page}"
            out = torch.empty_like(fq)
            try:
                wrapper = self.wrappers[prefix, page]
                wrapper.plan(indptr, indices, last_page_len, hq, hkv, d, page,
                             pos_encoding_mode="NONE", q_data_type=q.dtype,
                             kv_data_type=cache.dtype, sm_scale=scale)
                fn = (lambda wrapper=wrapper, out=out:
                      wrapper.run(fq, cache, out=out))
                # out [B, Hq, d] is [B, T=1, Hq, d], the order checked_run reads.
                err = checked_run(fn, out.view(B, 1, hq, d), ref)
                row[f"{key}_err"] = err
                if not err < ERROR_BOUND:
                    failures.append(f"{key} hq={hq} B={B} S={row['S']}: "
                                    f"error {err}")
                    continue
                row[f"{key}_ms"] = time_ms(fn)
                row[f"{key}_host_ms"] = host_ms(fn)
                row[f"{key}_isolated_ms"] = isolated_ms(fn)
                passed[key] = fn
            except Exception as ex:  # report, keep going
                row[f"{key}_error"] = str(ex)[:200]
                failures.append(f"{key} hq={hq} B={B} S={row['S']}: "
                                f"{str(ex)[:200]}")
        return passed


def flashinfer_summary(row):
    """flashinfer_ms: FlashInfer's fastest time for the shape (either kernel,
    either page size); speedup_vs_flashinfer[pP]: its faster kernel at page
    P over kvcc's time at page P (above 1: kvcc is faster); None where
    FlashInfer was not measured."""
    best = {}
    for p in PAGES:
        times = [row[k] for k in (f"flashinfer_p{p}_ms", f"flashinfer_tc_p{p}_ms")
                 if row.get(k) is not None]
        if times:
            best[p] = min(times)
    row["flashinfer_ms"] = min(best.values()) if best else None
    speedup = {f"p{p}": t / row[f"kvcc_p{p}_ms"] for p, t in best.items()
               if row.get(f"kvcc_p{p}_ms")}
    row["speedup_vs_flashinfer"] = speedup or None


def interleaved_ms(fns, reps=15, calls=10, warm=5):
    """Median over `reps` of the mean time of `calls` back-to-back calls of
    each of `fns` (name -> fn), timed in turns: every rep times each fn
    once, in an order that rotates and reverses every other rep. On the
    H200 the first long kernels a process times run up to 7% faster than
    the same kernels a few seconds later (the clock settles under sustained
    tensor load): timed in turns, that drift falls on every fn alike.
    Back to back, a call whose data fit in L2 (under about 50 MB on the
    H200) finds part of them left there by the call before: the decode
    grid's shapes (134 MB and more) time the same as when each call reads
    a copy of its cache the calls before it did not (within 0.3% in the
    same turns, session 30), smaller ones do not (ab_decode.py --rotate
    times them so)."""
    names = list(fns)
    for name in names:
        for _ in range(warm):
            fns[name]()
    torch.cuda.synchronize()
    # Sleep long enough (about 2e6 cycles per ms) for the host to queue all
    # calls, with margin.
    sleep_cycles = {
        name: int(min(2e9, max(1.0, 2 * host_ms(fns[name], 3) * calls) * 2e6))
        for name in names}
    samples = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        if rep % 2:
            order.reverse()
        for name in order:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            # Keep the GPU busy while the host queues the calls, so that
            # host overhead (table building, dispatch) does not show up as
            # GPU idle.
            torch.cuda._sleep(sleep_cycles[name])
            start.record()
            for _ in range(calls):
                fns[name]()
            end.record()
            torch.cuda.synchronize()
            samples[name].append(start.elapsed_time(end) / calls)
    return {name: statistics.median(times) for name, times in samples.items()}


def retime_in_turns(row, fns):
    """Times `fns` (name -> fn, each already checked and timed alone into
    row[name_ms]) again in turns (interleaved_ms): row[name_ms] becomes the
    time in turns, the time alone stays as row[name_ms_alone]."""
    if len(fns) < 2:
        return
    for name, ms in interleaved_ms(fns).items():
        row[f"{name}_ms_alone"] = row[f"{name}_ms"]
        row[f"{name}_ms"] = ms


def time_ms(fn, reps=15, calls=10, warm=5):
    """Median over `reps` of the mean time of `calls` back-to-back calls."""
    return interleaved_ms({"fn": fn}, reps, calls, warm)["fn"]


TIMED_BLOCKS = 1 << 16  # kTimedBlocks in bench_kernels.cu
TIMED_WARPS = 16  # kTimedWarps in bench_kernels.cu


def block_times(kvrt, fn):
    """Runs `fn` (the resident-table kernel) back to back with the "timed"
    variant, then breaks its last call down by block: the kernel's span
    from the first block's start to the last block's end, when the last
    block started, the blocks' durations, and how long the last blocks ran
    after the first (and after half of them) had finished. Microseconds."""
    kvrt.bench.kvcc_bench_set_variant(VARIANT_NAMES.index("timed") + 1)
    try:
        time_ms(fn, reps=3)
        n = TIMED_BLOCKS
        start = (ctypes.c_uint64 * n)()
        end = (ctypes.c_uint64 * n)()
        sm = (ctypes.c_uint32 * n)()
        phase = (ctypes.c_uint64 * (n * 2 * TIMED_WARPS))()  # [block][warp][mark]
        status = kvrt.bench.kvcc_bench_block_times(start, end, sm, phase, n)
        if status != 0:
            raise RuntimeError(f"kvcc_bench_block_times: cudaError {status}")
    finally:
        kvrt.bench.kvcc_bench_set_variant(0)
    blocks = [(start[i], end[i], sm[i], i) for i in range(n) if end[i]]
    if not blocks:
        raise RuntimeError("block_times: the timed kernel recorded no block")
    t0 = min(b[0] for b in blocks)
    starts = sorted((b[0] - t0) / 1e3 for b in blocks)
    ends = sorted((b[1] - t0) / 1e3 for b in blocks)
    durations = sorted((b[1] - b[0]) / 1e3 for b in blocks)
    # Per block: until its last warp folded its first chunk (ramp), and
    # from its last warp's last chunk to the block's end (epilogue).
    ramps, tails = [], []
    for b in blocks:
        base = 2 * TIMED_WARPS * b[3]
        # Every warp of the block marks the end of its loop; those that
        # folded a chunk mark their first too (0: none, or no such warp).
        firsts = [phase[base + 2 * w] for w in range(TIMED_WARPS)]
        lasts = [phase[base + 2 * w + 1] for w in range(TIMED_WARPS)]
        if any(firsts) and any(lasts):
            ramps.append((max(firsts) - b[0]) / 1e3)
            tails.append((b[1] - max(lasts)) / 1e3)
    ramps.sort()
    tails.sort()

    def q(values, f):
        return values[min(len(values) - 1, int(f * len(values)))]
    return dict(blocks=len(blocks), sms=len({b[2] for b in blocks}),
                span_us=ends[-1], last_start_us=starts[-1],
                duration_p10_us=q(durations, 0.1),
                duration_median_us=q(durations, 0.5),
                duration_p90_us=q(durations, 0.9),
                duration_max_us=durations[-1],
                first_end_us=ends[0], median_end_us=q(ends, 0.5),
                first_chunk_median_us=q(ramps, 0.5) if ramps else None,
                epilogue_median_us=q(tails, 0.5) if tails else None)


def isolated_ms(fn, iters=50, warm=10):
    """ANCHORS.md's method (torch_sdpa_anchor.py): the median over `iters`
    of one call between two events, synchronized after each, so the time
    includes the host's dispatch of the call when it is longer than the GPU's
    idle gap (what a user timing single calls sees)."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def host_ms(fn, calls=20):
    """Host time of one call (enqueue only), for the note on overhead."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) * 1e3 / calls


def copy_bandwidth():
    n = 4 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    a.random_(0, 255)
    b = torch.empty_like(a)
    t = time_ms(lambda: b.copy_(a), reps=10, calls=2, warm=2)
    del a, b
    torch.cuda.empty_cache()
    return 2 * n / t / 1e6  # GB/s, bytes read + written


def read_bandwidth(kvrt):
    """GB/s of kvcc_bench_read: a streaming read of 4 GiB (16-byte
    evict-first loads, nothing written), the roofline of decode, which
    only reads."""
    n = 4 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    a.random_(0, 255)
    sink = torch.zeros(1, dtype=torch.int32, device="cuda")

    def read():
        status = kvrt.bench.kvcc_bench_read(
            a.data_ptr(), n, sink.data_ptr(),
            torch.cuda.current_stream().cuda_stream)
        if status != 0:
            raise RuntimeError(f"kvcc_bench_read: cudaError {status}")

    t = time_ms(read, reps=10, calls=2, warm=2)
    del a
    torch.cuda.empty_cache()
    return n / t / 1e6


def reference(q, k, v):
    """float32 attention with GQA: q [B, Hq, 1, d], k/v [B, Hkv, S, d]."""
    B, Hq, _, d = q.shape
    Hkv = k.shape[1]
    out = torch.empty(B, Hq, 1, d, dtype=torch.float32, device=q.device)
    for b in range(B):  # one sequence at a time bounds the fp32 copies
        qb = q[b].float().view(Hkv, Hq // Hkv, d)
        kb, vb = k[b].float(), v[b].float()
        s = torch.matmul(qb, kb.transpose(1, 2)) / math.sqrt(d)
        out[b] = torch.matmul(torch.softmax(s, dim=-1), vb).reshape(Hq, 1, d)
    return out


def measure_sdpa(row, q, k, v, ref):
    """torch SDPA's cuDNN and flash backends on the contiguous cache (q
    [B, Hq, 1, d], k/v [B, Hkv, S, d], enable_gqa=True): checks against
    `ref`, times back to back and isolated; fills row[{cudnn,flash}_{err,
    ms,isolated_ms}], or {name}_error where a backend cannot run it, and
    returns {name: fn} of those that ran."""
    fns = {}
    for name, backend in [("cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("flash", SDPBackend.FLASH_ATTENTION)]:
        def fn(backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v,
                                                      enable_gqa=True)
        try:
            err = rel_error(fn(), ref)
            row[f"{name}_ms"] = time_ms(fn)
            row[f"{name}_isolated_ms"] = isolated_ms(fn)
            row[f"{name}_err"] = err
            fns[name] = fn
        except Exception as ex:  # report, keep going
            row[f"{name}_error"] = str(ex)[:200]
    return fns


def checked_run(fn, out, ref):
    """Poisons `out` with NaN, runs `fn` once and returns the relative error
    of `out` (kvcc's [B, T, Hq, d] order) against `ref` ([B, Hq, T, d])."""
    out.fill_(float("nan"))
    fn()
    torch.cuda.synchronize()
    return rel_error(out.transpose(1, 2), ref)


def load_libraries(lib_dirs, functions=()):
    """The A/B scripts' libraries: a Kvrt on the first of `lib_dirs`
    (build_ab_libs.sh directories, whose libkvcc_bench.so all link the
    same libkvrt.so) and [(name, libkvcc_bench)] of every one, named by
    its directory; the others get the first's ctypes signatures of
    `functions`. Raises ValueError when two names are the same."""
    kvrt = Kvrt(lib_dirs[0])
    libs = [(os.path.basename(os.path.normpath(lib_dirs[0])), kvrt.bench)]
    for lib_dir in lib_dirs[1:]:
        lib = ctypes.CDLL(os.path.join(lib_dir, "libkvcc_bench.so"))
        for name in functions:
            getattr(lib, name).argtypes = getattr(kvrt.bench, name).argtypes
            getattr(lib, name).restype = getattr(kvrt.bench, name).restype
        libs.append((os.path.basename(os.path.normpath(lib_dir)), lib))
    names = [name for name, _ in libs]
    if len(set(names)) != len(names):
        raise ValueError(f"the libraries' directory names must differ: "
                         f"{names}")
    return kvrt, libs


def finish_ab(json_path, rows, failures):
    """The A/B scripts' end: the rows to `json_path` (when given) with the
    device and the command line, one FAIL line per failure; the exit
    status."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(),
                       "command": " ".join(sys.argv), "rows": rows,
                       "failures": failures}, f, indent=1)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


def rel_error(x, ref):
    x = x.float()
    if not torch.isfinite(x).all():
        return float("inf")
    return ((x - ref).norm() / ref.norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", required=True)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sweep", action="store_true",
                    help="also time forced split counts")
    ap.add_argument("--variants", action="store_true",
                    help="also time the page-16 kernel variants of "
                         "bench_kernels.cu (CUDA-core body, two chunks per "
                         "step, five blocks per SM, L2 prefetch of the next "
                         "chunk)")
    ap.add_argument("--variant-names",
                    default=",".join(v for v in VARIANT_NAMES
                                     if v not in SPECIAL_VARIANTS),
                    help="which --variants to time (comma-separated)")
    ap.add_argument("--block-times", action="store_true",
                    help="also break one page-16 call down by block (start "
                         "and end of every block: the timed variant)")
    ap.add_argument("--page-order", choices=PAGE_ORDERS, default="random",
                    help="where the resident pages lie in the pool (see "
                         "page_permutation; kvcc p16/p64 rows only)")
    ap.add_argument("--no-flashinfer", action="store_true",
                    help="do not run FlashInfer (run by default when it can "
                         "be imported; see flashinfer_env.sh)")
    args = ap.parse_args()
    ResidentPages.order = args.page_order
    if args.quick:
        GQA[:] = GQA[:1]
    torch.manual_seed(0)
    kvrt = Kvrt(args.lib_dir)
    props = torch.cuda.get_device_properties(0)
    copy = copy_bandwidth()
    read = read_bandwidth(kvrt)
    print(f"{props.name}, {props.multi_processor_count} SMs, torch "
          f"{torch.__version__}; copy bandwidth {copy:.0f} GB/s (r+w), "
          f"read bandwidth {read:.0f} GB/s", flush=True)
    fi = None
    if args.no_flashinfer:
        fi_status = "not run: --no-flashinfer"
    else:
        try:
            fi = FlashInfer()
            fi_status = fi.describe()
        except Exception as ex:  # optional: report once, keep going
            fi_status = f"not run: {type(ex).__name__}: {str(ex)[:300]}"
    print(f"FlashInfer: {fi_status}", flush=True)
    rows, failures, fi_failures = [], [], []
    shapes = SHAPES[:2] if args.quick else SHAPES
    for hq, hkv in GQA:
        group = hq // hkv
        for B, S in shapes:
            q = torch.randn(B, hq, 1, HEAD_DIM, device="cuda", dtype=torch.float16)
            k = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=torch.float16)
            v = torch.randn(B, hkv, S, HEAD_DIM, device="cuda", dtype=torch.float16)
            kv_bytes = 2 * B * hkv * S * HEAD_DIM * 2
            scale = 1.0 / math.sqrt(HEAD_DIM)
            ref = reference(q, k, v)
            row = dict(hq=hq, hkv=hkv, B=B, S=S, d=HEAD_DIM, kv_bytes=kv_bytes)
            # The headline columns' calls (kvcc's kernel at both page
            # sizes, cuDNN, flash, FlashInfer's kernels), timed again in
            # turns once each has been checked and timed alone.
            headline = measure_sdpa(row, q, k, v, ref)
            # kvcc: queries/outputs [B, 1, Hq, d] = q's memory order.
            qk = q.transpose(1, 2).contiguous()
            fi_pages = {}
            for page in PAGES:
              resident = None
              try:
                cache = PagedCache(kvrt, k, v, page)
                out = torch.empty_like(qk)
                fn = lambda: cache.attention(qk, out, group, page, scale)
                err = checked_run(fn, out, ref)
                key = f"kvcc_api_p{page}"
                # The launch the call makes: split count and block size.
                row[f"{key}_plan"] = kvrt.plan(cache, 1, hq, False,
                                               cache.kernel(group, page))
                row[f"{key}_err"] = err
                if not err < ERROR_BOUND:
                    failures.append(f"{key} hq={hq} B={B} S={S}: error {err}")
                row[f"{key}_ms"] = time_ms(fn)
                row[f"{key}_host_ms"] = host_ms(fn)
                row[f"{key}_isolated_ms"] = isolated_ms(fn)
                if page == 16:
                    # The per-key score hook (H2O): same call with it on.
                    scores = torch.zeros(B, hkv, S, device="cuda",
                                         dtype=torch.float32)
                    sfn = lambda: cache.attention_scored(qk, out, group, page,
                                                         scale, scores, S)
                    serr = checked_run(sfn, out, ref)
                    # Every query row's probabilities sum to 1.
                    total = scores.sum().item()
                    row["scored_total_err"] = abs(total - B * hq) / (B * hq)
                    if not (serr < ERROR_BOUND
                            and row["scored_total_err"] < 1e-3):
                        failures.append(f"scored hq={hq} B={B} S={S}")
                    row["kvcc_api_p16_scored_ms"] = time_ms(sfn)
                    del scores
                cache.close()
                # The kernel with resident tables: the headline numbers.
                cache = ResidentPages(kvrt, k, v, page)
                resident = cache
                fn = lambda cache=cache, out=out: cache.attention(qk, out,
                                                                  scale)
                err = checked_run(fn, out, ref)
                key = f"kvcc_p{page}"
                row[f"{key}_err"] = err
                if not err < ERROR_BOUND:
                    failures.append(f"{key} hq={hq} B={B} S={S}: error {err}")
                row[f"{key}_ms"] = time_ms(fn)
                row[f"{key}_isolated_ms"] = isolated_ms(fn)
                if err < ERROR_BOUND:
                    headline[key] = fn
                if args.variants and page == 16:
                    try:
                        for variant, vname in enumerate(VARIANT_NAMES, 1):
                            if vname not in args.variant_names.split(","):
                                continue
                            kvrt.bench.kvcc_bench_set_variant(variant)
                            verr = checked_run(fn, out, ref)
                            row[f"{key}_{vname}_err"] = verr
                            if not verr < ERROR_BOUND:
                                failures.append(f"{key}_{vname} hq={hq} "
                                                f"B={B} S={S}: error {verr}")
                            row[f"{key}_{vname}_ms"] = time_ms(fn)
                    finally:  # the next rows run the emitted kernels
                        kvrt.bench.kvcc_bench_set_variant(0)
                if args.block_times and page == 16:
                    row["kvcc_p16_block_times"] = block_times(kvrt, fn)
                if args.sweep and B * hkv < 132:
                    # Split counts around one wave of 4 blocks per SM (the
                    # planner picks the first count filling >= 85% of it).
                    wave = 4 * props.multi_processor_count / (B * hkv)
                    counts = sorted({max(2, round(f * wave)) for f in
                                     (0.5, 0.75, 0.86, 1, 1.25, 1.5, 2, 3)})
                    sweep = {}
                    for splits in counts:
                        os.environ["KVRT_DECODE_SPLITS"] = str(splits)
                        sweep[splits] = time_ms(fn, reps=7)
                    del os.environ["KVRT_DECODE_SPLITS"]
                    row[f"{key}_split_sweep_ms"] = sweep
                del cache, out
              except Exception as ex:  # report, keep going
                failures.append(f"kvcc_p{page} hq={hq} B={B} S={S}: {ex}")
                row[f"kvcc_p{page}_ms"] = float("nan")
                row[f"kvcc_p{page}_err"] = float("nan")
              if fi is not None and resident is not None:
                # The same pages in FlashInfer's layout, run once kvcc is done.
                try:
                  fi_pages[page] = fi.pages(resident)
                except Exception as ex:  # report, keep going
                  row[f"flashinfer_p{page}_error"] = str(ex)[:200]
                  fi_failures.append(f"flashinfer_p{page} pages hq={hq} B={B} "
                                     f"S={S}: {str(ex)[:200]}")
              del resident
            for page, pages in fi_pages.items():
                headline.update(
                    fi.measure(row, q, ref, page, pages, scale, fi_failures))
            retime_in_turns(row, headline)
            del fi_pages, headline
            flashinfer_summary(row)
            for key in ["kvcc_p16", "kvcc_p64", "kvcc_api_p16", "kvcc_api_p64",
                        "cudnn", "flash", "flashinfer", "flashinfer_p16",
                        "flashinfer_p64", "flashinfer_tc_p16", "flashinfer_tc_p64"]:
                if row.get(f"{key}_ms") is not None:
                    row[f"{key}_GBps"] = kv_bytes / row[f"{key}_ms"] / 1e6
            if "cudnn_ms" in row:
                row["speedup_vs_cudnn"] = {
                    f"p{p}": row["cudnn_ms"] / row[f"kvcc_p{p}_ms"] for p in PAGES}
            if "cudnn_isolated_ms" in row:
                # ANCHORS.md's method on both sides (isolated_ms).
                row["speedup_vs_cudnn_isolated"] = {
                    key: row["cudnn_isolated_ms"] / row[f"kvcc_{key}_isolated_ms"]
                    for key in ("p16", "p64", "api_p16", "api_p64")
                    if f"kvcc_{key}_isolated_ms" in row}
            if "flash_ms" in row:
                row["speedup_vs_flash"] = {
                    f"p{p}": row["flash_ms"] / row[f"kvcc_p{p}_ms"] for p in PAGES}
            print(json.dumps(row), flush=True)
            rows.append(row)
            del q, k, v, qk, ref
            torch.cuda.empty_cache()
    result = dict(device=props.name, sms=props.multi_processor_count,
                  torch=torch.__version__, copy_GBps_rw=copy,
                  read_GBps=read,
                  error_bound=ERROR_BOUND, failures=failures, rows=rows,
                  flashinfer=fi_status, flashinfer_failures=fi_failures,
                  page_order=args.page_order)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "decode_h200.json"), "w") as f:
        json.dump(result, f, indent=1)
    write_markdown(result, os.path.join(args.out, "decode_h200.md"))
    try:
        plot(result, os.path.join(args.out, "decode_h200.png"))
    except Exception as ex:
        print("plot failed:", ex)
    print(open(os.path.join(args.out, "decode_h200.md")).read())
    if fi_failures:  # reported, not the benchmark's failures
        print("FLASHINFER FAILURES (not timed):", *fi_failures, sep="\n  ")
    if failures:
        print("CORRECTNESS FAILURES:", *failures, sep="\n  ")
        sys.exit(1)


def geomean(values):
    return math.exp(sum(math.log(x) for x in values) / len(values))


def write_markdown(result, path):
    copy = result["copy_GBps_rw"]
    read = result["read_GBps"]
    lines = [f"# Decode attention on {result['device']} (fp16, d=128)", "",
             f"Device bandwidth in the same run: read {read:.0f} GB/s "
             "(kvcc_bench_read: 16-byte streaming loads over 4 GiB, nothing "
             f"written), copy {copy:.0f} GB/s (torch copy_, read + write). "
             "GB/s = K+V bytes / time; % = of the read bandwidth. "
             "kvcc reads a paged cache (page 16 or 64) through "
             "kvrt_attention_launch; cuDNN and flash are torch SDPA on a "
             "contiguous cache with enable_gqa=True. Ratios are cuDNN (or "
             "flash) time over kvcc time: above 1 means kvcc is faster. "
             "kvcc p16/p64, cuDNN, flash and FlashInfer's kernels are timed "
             "in turns (interleaved_ms) after each was checked and timed "
             "alone (the JSON keeps the times alone as *_ms_alone); the API "
             "columns are timed alone.", "",
             "kvcc p16/p64: the kernel (split-K + merge) over resident device "
             f"page tables, pages in {result.get('page_order', 'random')} "
             "order in the pool (--page-order); kvcc API p16: the same kernel "
             "through kvrt_attention_launch on a kvrt cache filled by "
             "kvrt_append (pages where kvrt's allocator put them), which also "
             "uploads the batch's lengths and table offsets (the kernel reads "
             "page ids in place from the cache's device arena); "
             "+scores: the same with the per-key score hook on "
             "(kvrt_attention_launch_scored, H2O's statistic). FlashInfer: "
             "BatchDecodeWithPagedKVCacheWrapper on the same pages in its "
             "own layout (details below); FlashInfer ms is its fastest "
             "kernel and page size, vs FlashInfer pP its faster kernel at "
             "page P over kvcc pP.", "",
             "| Hq/Hkv | B | S | kvcc p16 ms | kvcc p64 ms | kvcc API p16 ms "
             "| API p16 +scores ms | cuDNN ms | flash ms | FlashInfer ms "
             "| kvcc p16 GB/s (%) | cuDNN GB/s | vs cuDNN p16 | vs cuDNN p64 "
             "| vs flash p16 | vs FlashInfer p16 | vs FlashInfer p64 "
             "| err p16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
             "---|---|"]
    ratios = {16: [], 64: []}
    fi_ratios = {16: [], 64: []}
    for r in result["rows"]:
        s = r.get("speedup_vs_cudnn", {})
        fs = r.get("speedup_vs_flashinfer") or {}
        for p in (16, 64):
            if f"p{p}" in s:
                ratios[p].append(s[f"p{p}"])
            if f"p{p}" in fs:
                fi_ratios[p].append(fs[f"p{p}"])
        g = r["kvcc_p16_GBps"]
        lines.append(
            f"| {r['hq']}/{r['hkv']} | {r['B']} | {r['S']} "
            f"| {r['kvcc_p16_ms']:.4f} | {r['kvcc_p64_ms']:.4f} "
            f"| {r.get('kvcc_api_p16_ms', float('nan')):.4f} "
            f"| {r.get('kvcc_api_p16_scored_ms', float('nan')):.4f} "
            f"| {r.get('cudnn_ms', float('nan')):.4f} "
            f"| {r.get('flash_ms', float('nan')):.4f} "
            f"| {cell(r.get('flashinfer_ms'), '.4f')} "
            f"| {g:.0f} ({100 * g / read:.0f}%) "
            f"| {r.get('cudnn_GBps', float('nan')):.0f} "
            f"| {s.get('p16', float('nan')):.3f} | {s.get('p64', float('nan')):.3f} "
            f"| {r.get('speedup_vs_flash', {}).get('p16', float('nan')):.2f} "
            f"| {cell(fs.get('p16'), '.3f')} | {cell(fs.get('p64'), '.3f')} "
            f"| {r['kvcc_p16_err']:.1e} |")
    lines.append("")
    for p in (16, 64):
        if ratios[p]:
            lines.append(f"Geometric mean speedup vs cuDNN, page {p}: "
                         f"{geomean(ratios[p]):.3f}x; minimum {min(ratios[p]):.4f}x")
    for p in (16, 64):
        if fi_ratios[p]:
            lines.append(f"Geometric mean speedup vs FlashInfer, page {p}: "
                         f"{geomean(fi_ratios[p]):.3f}x; minimum "
                         f"{min(fi_ratios[p]):.4f}x")
    lines.append("")
    lines.append(f"FlashInfer: {result['flashinfer']}")
    lines += flashinfer_markdown(result)
    lines += isolated_markdown(result)
    lines += block_times_markdown(result)
    lines += variants_markdown(result)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def cell(x, spec):
    return "n/a" if x is None else format(x, spec)


def flashinfer_markdown(result):
    """FlashInfer's per-kernel table (CUDA-core and tensor-core decode, page
    16 and 64): times, K+V GB/s and the largest relative error."""
    rows = [r for r in result["rows"]
            if any(k.startswith("flashinfer_") and k.endswith("_ms")
                   and r[k] is not None for k in r)]
    lines = []
    if rows:
        lines += ["", "FlashInfer by kernel (CUDA-core decode, tensor-core "
                  "decode) and page size, ms (K+V GB/s); err: the largest "
                  "relative error of the four:", "",
                  "| Hq/Hkv | B | S | decode p16 | decode p64 | tensor-core p16 "
                  "| tensor-core p64 | kvcc p16 ms | kvcc p64 ms | err |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
    variants = [f"flashinfer_{t}p{p}" for t in ("", "tc_") for p in (16, 64)]
    for r in rows:
        times = []
        for key in variants:
            ms = r.get(f"{key}_ms")
            times.append("n/a" if ms is None else
                         f"{ms:.4f} ({r[f'{key}_GBps']:.0f})")
        errs = [r[f"{key}_err"] for key in variants
                if r.get(f"{key}_err") is not None]
        lines.append(
            f"| {r['hq']}/{r['hkv']} | {r['B']} | {r['S']} | "
            + " | ".join(times)
            + f" | {r['kvcc_p16_ms']:.4f} | {r['kvcc_p64_ms']:.4f} "
            f"| {cell(max(errs) if errs else None, '.1e')} |")
    failures = result.get("flashinfer_failures", [])
    if failures:
        lines += ["", "FlashInfer not timed (error bound or exception):"]
        lines += [f"- {failure}" for failure in failures]
    return lines


VARIANT_NAMES = ["simt", "mma2", "lb5", "prefetch", "tmapf1", "tmapf2",
                 "nc", "ldg", "base", "lb3", "qsmem", "dyn", "timed", "w16",
                 "b128", "smemparams", "l2scores", "scorenormal"]
# Variants that only mean something in a call with the key-score hook or
# with the probe read back (profile_decode.py --variant, --block-times).
SPECIAL_VARIANTS = ("timed", "l2scores", "scorenormal")


def block_times_markdown(result):
    """--block-times: one page-16 call of the emitted kernel by block."""
    rows = [r for r in result["rows"] if "kvcc_p16_block_times" in r]
    if not rows:
        return []
    lines = ["", "One call by block (--block-times: the emitted page-16 kernel "
             "with each block's start and end read from the GPU's global "
             "timer, the last of back-to-back calls), µs from the first "
             "block's start: span = the last block's end; per call = the "
             "event-timed mean per call of the emitted kernel in the table "
             "above (kernel, merge and the gaps between calls); first chunk "
             "folded = from a block's start until its last warp has folded "
             "its first 16 keys; epilogue = from its last warp's last chunk "
             "to its end (combining the warps, storing). On grids of "
             "more than one wave (128 × 2K) the last start and the last "
             "end − median end describe the second wave:", "",
             "| Hq/Hkv | B | S | blocks (SMs) | per call | span | last block "
             "starts | block µs p10 / median / p90 / max | first end | "
             "median end | last end − median end | first chunk folded "
             "(median) | epilogue (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["kvcc_p16_block_times"]
        lines.append(
            f"| {r['hq']}/{r['hkv']} | {r['B']} | {r['S']} "
            f"| {t['blocks']} ({t['sms']}) | {1e3 * r['kvcc_p16_ms']:.1f} "
            f"| {t['span_us']:.1f} | {t['last_start_us']:.1f} "
            f"| {t['duration_p10_us']:.1f} / {t['duration_median_us']:.1f} / "
            f"{t['duration_p90_us']:.1f} / {t['duration_max_us']:.1f} "
            f"| {t['first_end_us']:.1f} | {t['median_end_us']:.1f} "
            f"| {t['span_us'] - t['median_end_us']:.1f} "
            f"| {cell(t.get('first_chunk_median_us'), '.1f')} "
            f"| {cell(t.get('epilogue_median_us'), '.1f')} |")
    return lines


def isolated_markdown(result):
    """Single calls timed as ANCHORS.md times them (isolated_ms)."""
    rows = [r for r in result["rows"] if "speedup_vs_cudnn_isolated" in r]
    if not rows:
        return []
    lines = ["", "Isolated calls, timed as ANCHORS.md times them "
             "(torch_sdpa_anchor.py: one call between two CUDA events, "
             "synchronized after each, median of 50), ms. Unlike the table "
             "above, this includes the host's dispatch of the call where it "
             "outlasts the GPU's idle gap: torch's SDPA dispatch for cuDNN "
             "and flash, the ctypes call of kvrt_attention_launch (API) or "
             "of the benchmark's launch over resident tables (kernel). "
             "Ratios are cuDNN's time over kvcc's, both measured this way:",
             "", "| Hq/Hkv | B | S | kvcc kernel p16 | kvcc API p16 "
             "| kvcc API p64 | cuDNN | flash | vs cuDNN kernel p16 "
             "| vs cuDNN API p16 | vs cuDNN API p64 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = {"api_p16": [], "api_p64": []}
    for r in rows:
        s = r["speedup_vs_cudnn_isolated"]
        for key in ratios:
            if key in s:
                ratios[key].append(s[key])
        lines.append(
            f"| {r['hq']}/{r['hkv']} | {r['B']} | {r['S']} "
            f"| {cell(r.get('kvcc_p16_isolated_ms'), '.4f')} "
            f"| {cell(r.get('kvcc_api_p16_isolated_ms'), '.4f')} "
            f"| {cell(r.get('kvcc_api_p64_isolated_ms'), '.4f')} "
            f"| {cell(r.get('cudnn_isolated_ms'), '.4f')} "
            f"| {cell(r.get('flash_isolated_ms'), '.4f')} "
            f"| {cell(s.get('p16'), '.2f')} | {cell(s.get('api_p16'), '.2f')} "
            f"| {cell(s.get('api_p64'), '.2f')} |")
    lines.append("")
    for key, values in ratios.items():
        if values:
            lines.append(f"Geometric mean, isolated calls, kvcc {key} vs "
                         f"cuDNN: {geomean(values):.2f}x; minimum "
                         f"{min(values):.2f}x")
    return lines


def variants_markdown(result):
    """--variants: page-16 times of the bench_kernels.cu variants next to
    the kernel kvcc emits."""
    names = [v for v in VARIANT_NAMES
             if any(f"kvcc_p16_{v}_ms" in r for r in result["rows"])]
    rows = [r for r in result["rows"]
            if any(f"kvcc_p16_{v}_ms" in r for v in names)]
    if not rows:
        return []
    lines = ["", "Page-16 kernel variants (--variants, bench_kernels.cu), ms: "
             "simt CUDA-core body; mma2 two chunks per step; lb5 five blocks "
             "per SM; prefetch per-lane L2 prefetch of the next chunk; "
             "tmapf1/tmapf2 TMA L2 prefetch (cp.async.bulk.prefetch.L2) of "
             "the chunk 1/2 steps ahead; nc ld.global.nc.L1::no_allocate "
             "loads; ldg ld.global.nc loads; base the tensor-core body "
             "called like those variants (ld.global.cs loads, as kvcc "
             "emits); lb3 three blocks per SM (K and V loads issued "
             "together); qsmem Qᵀ fragments in shared memory (4 blocks per "
             "SM, K and V loads issued together); dyn steps claimed from a "
             "block-wide counter instead of w, w + 4, ... per warp; timed the "
             "emitted kernel recording its blocks' times (--block-times); "
             "w16 blocks of 16 warps, one per SM; b128 the emitted kernel "
             "under __launch_bounds__(128), never launched wide; smemparams "
             "the emitted body reading its parameters from shared memory "
             "(l2scores' control; l2scores and scorenormal only differ with "
             "the key-score hook: profile_decode.py --variant):", "",
             "| Hq/Hkv | B | S | kvcc p16 | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = [cell(r.get(f"kvcc_p16_{v}_ms"), ".4f") for v in names]
        lines.append(f"| {r['hq']}/{r['hkv']} | {r['B']} | {r['S']} "
                     f"| {r['kvcc_p16_ms']:.4f} | " + " | ".join(cells) + " |")
    return lines


def plot(result, path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from plot_decode import plot as plot_result
    plot_result(result, path)


if __name__ == "__main__":
    main()
