#!/usr/bin/env python3
"""Compiles, on a machine without a GPU, the FlashInfer modules that
bench_decode.py's FlashInfer comparison loads, and lists the package data
files that FlashInfer reads when it creates their specs at run time.

The benchmark's FlashInfer calls are BatchDecodeWithPagedKVCacheWrapper
with fp16 q/kv/o, int32 page tables, head_dim 128, no RoPE, no logits
soft-cap and no sliding window: use_tensor_cores=False loads the CUDA-core
batch decode module (GQA group size and page size are run-time arguments of
it), use_tensor_cores=True the fa2 batch prefill module (equal K/V strides,
which a [pages, 2, page, heads, dim] cache has). Each module is built with
FlashInfer's own JIT build (ninja + nvcc, for FLASHINFER_CUDA_ARCH_LIST,
default 9.0a) and copied to AOT_DIR/<name>/<name>.so, where FlashInfer
looks for prebuilt modules (flashinfer/data/aot) before it compiles.

Creating a module's spec also renders FlashInfer's jinja templates and
copies sources from flashinfer/data/csrc, also when the module is prebuilt,
so those files must ship with the package: --keep-list gets the paths
(relative to flashinfer/data) that were opened while the specs were made.

Run by prepare_flashinfer.sh with the full flashinfer package importable:
  flashinfer_prebuild.py --aot-dir DIR --keep-list FILE [--no-tensor-cores]
"""
import argparse
import os
import shutil
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aot-dir", required=True)
    ap.add_argument("--keep-list", required=True)
    ap.add_argument("--no-tensor-cores", action="store_true",
                    help="skip the fa2 prefill module (use_tensor_cores=True)")
    args = ap.parse_args()
    os.environ.setdefault("FLASHINFER_CUDA_ARCH_LIST", "9.0a")
    # Two cores here, shared: one nvcc process with one thread.
    os.environ.setdefault("MAX_JOBS", "1")
    os.environ.setdefault("FLASHINFER_NVCC_THREADS", "1")

    import torch
    import flashinfer
    from flashinfer.jit import env as jit_env
    from flashinfer.jit.attention import modules

    data_root = os.path.realpath(jit_env.FLASHINFER_DATA)
    opened = set()

    def audit(event, event_args):
        if event != "open" or not isinstance(event_args[0], (str, bytes,
                                                               os.PathLike)):
            return
        path = os.path.realpath(os.fsdecode(event_args[0]))
        if path.startswith(data_root + os.sep):
            opened.add(os.path.relpath(path, data_root))

    sys.addaudithook(audit)
    # (dtype_q, dtype_kv, dtype_o, dtype_idx, head_dim_qk, head_dim_vo,
    #  pos_encoding_mode NONE, use_sliding_window, use_logits_soft_cap): the
    # arguments BatchDecodeWithPagedKVCacheWrapper.plan passes.
    common = (torch.float16, torch.float16, torch.float16, torch.int32, 128,
              128, 0, False, False)
    specs = [modules.gen_batch_decode_module(*common)]
    if not args.no_tensor_cores:
        # + use_fp16_qk_reduction, use_token_head_sf, as get_batch_prefill_module
        # passes them. It also makes the spec of the module for K and V caches
        # of different strides (built only when such a cache is run, which
        # the benchmark does not): made here for its data files, not built.
        prefill = ("fa2", *common, False, False)
        specs.append(modules._gen_batch_prefill_primary_module(*prefill))
        modules._gen_batch_prefill_independent_paged_module(*prefill)

    for spec in specs:
        # Anything left in the package's own aot folder would be loaded
        # instead of being built; the build package must have none.
        if spec.is_aot:
            sys.exit(f"{spec.name}: a prebuilt module is already installed "
                     f"at {spec.aot_path}")
        t0 = time.time()
        spec.build()  # ninja: nothing to do when the .so is up to date
        dest = os.path.join(args.aot_dir, spec.name, spec.name + ".so")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(spec.jit_library_path, dest)
        print(f"{spec.name}: {os.path.getsize(dest) / 1e6:.1f} MB "
              f"({time.time() - t0:.0f} s)", flush=True)

    with open(args.keep_list, "w") as f:
        f.write("".join(p + "\n" for p in sorted(opened)))
    print(f"flashinfer {flashinfer.__version__}: {len(specs)} modules, "
          f"{len(opened)} data files read by their specs")


if __name__ == "__main__":
    main()
