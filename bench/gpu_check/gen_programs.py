#!/usr/bin/env python3
"""Writes the kv programs the GPU correctness check compiles.

Each program has a `prefill` (causal, a prompt whose length is not a multiple
of the page) and a `decode_step` (one token) over one paged cache. kvcc
compiles them for CUDA here; bench/gpu_check.sh builds and runs them on the
GPU machine, where kvcc-run checks every output against float64.

    gen_programs.py OUT_DIR
"""
import itertools
import pathlib
import sys

# (q heads, kv heads): Llama-3 GQA 32/8 and plain MHA 8/8.
HEADS = [(32, 8), (8, 8)]
HEAD_DIMS = [64, 128]
DTYPES = ["f16", "bf16"]
PAGE = 16
BATCH = 3
PROMPT = 37  # not a multiple of the page
LONG_PROMPT = 1000  # ditto, many pages
CAPACITY = 2048


def program(hq, hkv, d, dtype, batch, prompt):
    cache = (f"!kv.cache<heads = {hkv}, dim = {d}, {dtype}, "
             f"capacity = {CAPACITY}, #kv.paged<page = {PAGE}>>")

    def fn(name, tokens, causal):
        q = f"tensor<{batch}x{tokens}x{hq}x{d}x{dtype}>"
        kv = f"tensor<{batch}x{tokens}x{hkv}x{d}x{dtype}>"
        seqs = f"tensor<{batch}xi32>"
        attr = " {causal}" if causal else ""
        return f"""
func.func @{name}(%c: !cache, %s: {seqs}, %q: {q}, %k: {kv}, %v: {kv}) -> {q} {{
  kv.append %k, %v into %c[%s] : {kv}, {kv} into !cache[{seqs}]
  %o = kv.attention %q, %c[%s]{attr} : {q}, !cache[{seqs}] -> {q}
  return %o : {q}
}}
"""

    return (f"// GPU check: {hq}/{hkv} heads, d={d}, {dtype}, page {PAGE}, "
            f"batch {batch}, prompt {prompt}.\n!cache = {cache}\n" +
            fn("prefill", prompt, True) + fn("decode_step", 1, False))


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for (hq, hkv), d, dtype in itertools.product(HEADS, HEAD_DIMS, DTYPES):
        name = f"gqa{hq}_{hkv}_d{d}_{dtype}"
        (out / f"{name}.mlir").write_text(
            program(hq, hkv, d, dtype, BATCH, PROMPT))
    (out / "long_gqa32_8_d128_f16.mlir").write_text(
        program(32, 8, 128, "f16", 2, LONG_PROMPT))


if __name__ == "__main__":
    main()
