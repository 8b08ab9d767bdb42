#!/usr/bin/env python3
"""Decode over a kvrt cache that continuous batching has churned, against
the same keys and values in a fresh pool (each sequence's pages in order)
and in a pool whose free pages were shuffled first (pages in random
order), in one process on the H200.

Where a cache's pages lie decides 2-3% of decode's speed on the large
shapes (bench/results/decode_ab/, "Session 28"): the same kernel ties
cuDNN over pages in order and loses 2-3% over randomly placed ones. This
script asks what kvrt's allocator leaves after a serving loop: B slots,
each holding a sequence that gets a prompt (one kvrt_append of P tokens),
then one token per decode step (kvrt_append of the whole batch) until it
reaches its length P + G, when it is destroyed and the slot starts a new
sequence; every layer is a cache of its own on the one pool, appended in
turn, as a model's layers would be. Lengths are drawn uniformly from
--prompt and --generate; the first sequences start part-way through their
generation, so that the slots finish at staggered times from the start.
With --pool-fraction below 1 the pool holds less than every slot's longest
sequence and a slot's next sequence waits until the free pages cover its
whole length besides what the running ones still need (a scheduler that
never preempts), so that the pool runs nearly full, as a serving engine
keeps it. After --turnover sequences per slot have finished, the batch of
running sequences (layer 0, ragged lengths) is copied into the two fresh
pools, every cache's output is checked against a float32 reference on
NaN-poisoned outputs, and the three are timed in turns (bench_decode.py's
interleaved_ms) through kvrt_attention_launch.

Usage (on the GPU machine, after building libkvrt.so and
libkvcc_bench.so, see run_on_device.sh):
  python3 bench/decode/churn_decode.py --lib-dir build-gpu/lib \\
      [--batch 16 --prompt 8192,28672 --generate 512,4096] [--layers 4] \\
      [--pool-fraction 1] [--turnover 2] [--pages 16,64] [--json FILE]
"""
import argparse
import ctypes
import json
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_decode import (ERROR_BOUND, HEAD_DIM, KVRT_DEVICE_CUDA,  # noqa: E402
                          KVRT_DTYPE_F16, CacheDesc, Kvrt, PagedCache,
                          checked_run, interleaved_ms, read_bandwidth,
                          reference)


def pages_for(tokens, page):
    return (tokens + page - 1) // page


class Serving:
    """The serving loop: `batch` slots on one pool of `layers` caches
    (page `page`, Hkv kv heads, d 128, fp16). Layer 0's keys and values
    are kept in self.k / self.v ([B, Hkv, longest, d]) for the reference
    and the fresh copies; every layer gets the same data."""

    def __init__(self, kvrt, args, page, seed):
        self.kvrt = kvrt
        self.rng = random.Random(seed)
        self.prompt, self.generate = args.prompt, args.generate
        B, Hkv = args.batch, args.hkv
        longest = self.prompt[1] + self.generate[1]
        self.desc = CacheDesc(Hkv, HEAD_DIM, KVRT_DTYPE_F16, page, longest)
        # --pool-fraction of the room for every slot at its longest in
        # every layer (1: no sequence ever waits), at least one longest.
        room = args.layers * Hkv * pages_for(longest, page)
        pages = max(room, int(args.pool_fraction * B * room)) + 16
        self.pool = ctypes.c_void_p()
        kvrt.check(kvrt.lib.kvrt_pool_create(
            KVRT_DEVICE_CUDA,
            kvrt.lib.kvrt_cache_page_bytes(ctypes.byref(self.desc)), pages,
            ctypes.byref(self.pool)), "kvrt_pool_create")
        self.caches = []
        for _ in range(args.layers):
            cache = ctypes.c_void_p()
            kvrt.check(kvrt.lib.kvrt_cache_create(
                self.pool, ctypes.byref(self.desc), ctypes.byref(cache)),
                "kvrt_cache_create")
            self.caches.append(cache)
        self.k = torch.zeros(B, Hkv, longest, HEAD_DIM, dtype=torch.float16,
                             device="cuda")
        self.v = torch.zeros_like(self.k)
        self.stream = torch.cuda.current_stream().cuda_stream
        self.layers = args.layers
        self.page = page
        self.pages_total = pages
        self.ids = [0] * B
        self.lengths = [0] * B
        self.targets = [0] * B
        # Slots without a sequence wait with the lengths of their next one.
        self.waiting = {}
        self.finished = 0
        self.steps = 0
        self.waited = 0
        for s in range(B):
            self.draw(s, first=True)
        self.admit()

    def pages_of(self, tokens):
        """Pages a sequence of `tokens` tokens holds over all layers."""
        return self.layers * self.desc.num_kv_heads * pages_for(tokens,
                                                                self.page)

    def draw(self, s, first):
        """The lengths of slot `s`'s next sequence (prompt, final length).
        The first sequences begin part-way through their generation."""
        prompt = self.rng.randint(*self.prompt)
        target = prompt + self.rng.randint(*self.generate)
        if first:
            prompt = self.rng.randint(prompt, target - 1)
        self.waiting[s] = (prompt, target)

    def admit(self):
        """Starts the waiting slots' sequences, in slot order, while the
        free pages cover each one's whole length besides what the running
        sequences still need to reach theirs (a scheduler that never has to
        preempt)."""
        used = sum(self.pages_of(n) for s, n in enumerate(self.lengths)
                   if s not in self.waiting)
        reserved = sum(self.pages_of(t) for s, t in enumerate(self.targets)
                       if s not in self.waiting)
        free = self.pages_total - used
        for s in sorted(self.waiting):
            prompt, target = self.waiting[s]
            if free - (reserved - used) < self.pages_of(target):
                break
            del self.waiting[s]
            self.start(s, prompt, target)
            used += self.pages_of(prompt)
            reserved += self.pages_of(target)
            free -= self.pages_of(prompt)

    def active(self):
        """The slots running a sequence."""
        slots = [s for s in range(len(self.lengths)) if s not in self.waiting]
        if not slots:
            raise RuntimeError("no sequence fits the pool: raise "
                               "--pool-fraction")
        return slots

    def start(self, s, prompt, target):
        """A new sequence in slot `s`: its prompt appended to every layer."""
        kvrt = self.kvrt
        i = ctypes.c_int32()
        kvrt.check(kvrt.lib.kvrt_sequence_create(self.pool, ctypes.byref(i)),
                   "kvrt_sequence_create")
        self.ids[s] = i.value
        Hkv = self.desc.num_kv_heads
        k = torch.randn(1, prompt, Hkv, HEAD_DIM, dtype=torch.float16,
                        device="cuda")
        v = torch.randn_like(k)
        one = (ctypes.c_int32 * 1)(i.value)
        for cache in self.caches:
            kvrt.check(kvrt.lib.kvrt_append(cache, 1, one, prompt,
                                            k.data_ptr(), v.data_ptr(),
                                            self.stream), "kvrt_append")
        self.k[s, :, :prompt] = k[0].transpose(0, 1)
        self.v[s, :, :prompt] = v[0].transpose(0, 1)
        self.lengths[s] = prompt
        self.targets[s] = target

    def step(self):
        """One decode step: a token for every running sequence in every
        layer; the sequences that reached their length make room for
        waiting ones."""
        kvrt = self.kvrt
        slots = self.active()
        B, Hkv = len(slots), self.desc.num_kv_heads
        ids = (ctypes.c_int32 * B)(*(self.ids[s] for s in slots))
        k = torch.randn(B, 1, Hkv, HEAD_DIM, dtype=torch.float16,
                        device="cuda")
        v = torch.randn_like(k)
        for cache in self.caches:
            kvrt.check(kvrt.lib.kvrt_append(cache, B, ids, 1, k.data_ptr(),
                                            v.data_ptr(), self.stream),
                       "kvrt_append")
        index = torch.tensor(slots, device="cuda")
        positions = torch.tensor([self.lengths[s] for s in slots],
                                 device="cuda")
        self.k[index, :, positions] = k[:, 0]
        self.v[index, :, positions] = v[:, 0]
        self.steps += 1
        self.waited += len(self.waiting)
        for s in slots:
            self.lengths[s] += 1
            if self.lengths[s] == self.targets[s]:
                kvrt.check(kvrt.lib.kvrt_sequence_destroy(self.pool,
                                                          self.ids[s]),
                           "kvrt_sequence_destroy")
                self.finished += 1
                self.draw(s, first=False)
        self.admit()

    def attention(self, q, out, scale, kernel, ids):
        """Layer 0's decode call over the sequences `ids` (a ctypes array)."""
        kvrt = self.kvrt
        kvrt.check(kvrt.lib.kvrt_attention_launch(
            self.caches[0], len(ids), ids, 1, q.shape[2], q.data_ptr(),
            out.data_ptr(), scale, 0, kernel, kvrt.threads, self.stream),
            "kvrt_attention_launch")

    def close(self):
        self.kvrt.lib.kvrt_pool_destroy(self.pool)


RELEASE_ORDERS = ("sorted", "heads")


def churn(kvrt, args, page, order):
    """A serving loop run to --turnover on a pool created with
    KVRT_RELEASE_ORDER=`order` (the environment as it was afterwards).
    The same seed gives every order the same lengths and data."""
    before = os.environ.get("KVRT_RELEASE_ORDER")
    os.environ["KVRT_RELEASE_ORDER"] = order
    try:
        torch.manual_seed(args.seed)
        serving = Serving(kvrt, args, page, args.seed)
    finally:
        if before is None:
            del os.environ["KVRT_RELEASE_ORDER"]
        else:
            os.environ["KVRT_RELEASE_ORDER"] = before
    while serving.finished < args.turnover * args.batch:
        serving.step()
    torch.cuda.synchronize()
    return serving


def run_page(kvrt, args, page):
    hq, Hkv = args.hq, args.hkv
    servings = {order: churn(kvrt, args, page, order)
                for order in args.release_orders}
    first = servings[args.release_orders[0]]
    slots = first.active()
    for order, serving in servings.items():
        if (serving.active() != slots or serving.lengths != first.lengths
                or serving.steps != first.steps):
            raise RuntimeError(f"release order {order}: another workload")
    B = len(slots)
    lengths = [first.lengths[s] for s in slots]
    index = torch.tensor(slots, device="cuda")
    k, v = first.k[index], first.v[index]
    q = torch.randn(B, 1, hq, HEAD_DIM, dtype=torch.float16, device="cuda")
    ref = torch.cat([reference(q[b:b + 1].transpose(1, 2),
                               k[b:b + 1, :, :n], v[b:b + 1, :, :n])
                     for b, n in enumerate(lengths)])
    scale = 1.0 / math.sqrt(HEAD_DIM)
    kernel = kvrt.bench.kvcc_bench_kernel(hq // Hkv, page)
    fresh = PagedCache(kvrt, k, v, page, lengths=lengths)
    shuffled = PagedCache(kvrt, k, v, page, fragment=True, lengths=lengths)
    del k, v
    fns, outs = {}, {}

    def churned(serving, out):
        ids = (ctypes.c_int32 * B)(*(serving.ids[s] for s in slots))
        return lambda: serving.attention(q, out, scale, kernel, ids)

    for order, serving in servings.items():
        name = f"churned_{order}"
        outs[name] = torch.empty_like(q)
        fns[name] = churned(serving, outs[name])
    for name, cache in (("in_order", fresh), ("shuffled", shuffled)):
        outs[name] = torch.empty_like(q)
        fns[name] = (lambda cache, out: lambda: cache.attention(
            q, out, hq // Hkv, page, scale, kernel))(cache, outs[name])
    row = {"page": page, "slots": args.batch, "batch": B, "hq": hq,
           "hkv": Hkv, "layers": args.layers,
           "pool_pages": first.pages_total, "steps": first.steps,
           "finished": first.finished,
           "waiting_per_step": first.waited / first.steps,
           "release_orders": list(args.release_orders), "lengths": lengths,
           "kv_bytes": sum(lengths) * Hkv * HEAD_DIM * 2 * 2}
    failures = []
    for name, fn in fns.items():
        err = checked_run(fn, outs[name], ref)
        row[f"{name}_err"] = err
        if not err < ERROR_BOUND:
            failures.append(f"page {page} {name}: error {err}")
    if not failures:
        ms = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, t in interleaved_ms(fns).items():
                ms[name].append(t)
        for name, times in ms.items():
            row[f"{name}_ms"] = sorted(times)[len(times) // 2]
            row[f"{name}_ms_rounds"] = times
            row[f"{name}_GBps"] = row["kv_bytes"] / row[f"{name}_ms"] / 1e6
    for cache in [fresh, shuffled] + list(servings.values()):
        cache.close()
    return row, failures, list(fns)


def parse_range(text):
    lo, hi = (int(x) for x in text.split(","))
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"bad range '{text}': LO,HI with "
                                         "0 < LO <= HI")
    return lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib-dir", required=True,
                    help="directory of libkvrt.so and libkvcc_bench.so")
    ap.add_argument("--batch", type=int, default=16, help="slots")
    ap.add_argument("--hq", type=int, default=32)
    ap.add_argument("--hkv", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4,
                    help="caches on the pool, appended in turn")
    ap.add_argument("--prompt", type=parse_range, default=(8192, 28672),
                    help="prompt lengths LO,HI (uniform)")
    ap.add_argument("--generate", type=parse_range, default=(512, 4096),
                    help="generated lengths LO,HI (uniform)")
    ap.add_argument("--turnover", type=float, default=2.0,
                    help="sequences finished per slot before measuring")
    ap.add_argument("--pool-fraction", type=float, default=1.0,
                    help="pool pages as a fraction of every slot's longest "
                    "sequence in every layer; below 1 new sequences wait "
                    "for room")
    ap.add_argument("--release-orders", default="sorted",
                    type=lambda text: text.split(","),
                    help="kvrt's release orders to churn a pool each with "
                    "(KVRT_RELEASE_ORDER: sorted, kvrt's default, or heads), "
                    "comma-separated")
    ap.add_argument("--pages", default="16,64", help="page sizes")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repetitions of the timing turns")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    if (args.batch < 1 or args.layers < 1 or args.hq % args.hkv
            or not 0 < args.pool_fraction <= 1
            or not set(args.release_orders) <= set(RELEASE_ORDERS)
            or len(set(args.release_orders)) != len(args.release_orders)):
        ap.error("positive --batch and --layers, --hq a multiple of --hkv, "
                 "0 < --pool-fraction <= 1, --release-orders among "
                 f"{RELEASE_ORDERS} without repeats")
    kvrt = Kvrt(args.lib_dir)
    read = read_bandwidth(kvrt)
    print(f"read bandwidth {read:.0f} GB/s; times in ms, and each entry's "
          "time over in_order's")
    rows, failures = [], []
    for page in [int(x) for x in args.pages.split(",")]:
        row, bad, names = run_page(kvrt, args, page)
        rows.append(row)
        failures += bad
        if page == int(args.pages.split(",")[0]):
            print("| page | B | layers | pool fraction | steps | waiting | "
                  "mean length | " + " | ".join(names) + " | "
                  + " | ".join(f"{n} / in_order" for n in names
                               if n != "in_order")
                  + " | errors |")
            print("|---|---|---|---|---|---|---|"
                  + "---|" * (2 * len(names)))
        errs = " / ".join(f"{row[f'{n}_err']:.1e}" for n in names)
        mean = sum(row["lengths"]) / len(row["lengths"])
        head = (f"| {page} | {row['batch']} | {args.layers} | "
                f"{args.pool_fraction} | {row['steps']} | "
                f"{row['waiting_per_step']:.1f} | {mean:.0f} | ")
        if bad:
            print(head + "not timed | " + errs + " |", flush=True)
            continue
        base = row["in_order_ms"]
        print(head + " | ".join(f"{row[f'{n}_ms']:.4f}" for n in names)
              + " | " + " | ".join(f"{row[f'{n}_ms'] / base:.4f}"
                                   for n in names if n != "in_order")
              + " | " + errs + " |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(),
                       "command": " ".join(sys.argv), "read_GBps": read,
                       "rows": rows, "failures": failures}, f, indent=1)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
