#!/usr/bin/env python3
"""Checks that kv-raise-attention preserves a model graph's meaning.

    compare_raised.py ORIGINAL.mlir RAISED.mlir ORIGINAL.so RAISED.so LIBKVRT
                      [--seed N] [--padding-mask ARG]

ORIGINAL.so is the exported graph compiled by upstream MLIR's CPU pipeline
(bufferize, lower to LLVM); RAISED.so is the raised graph compiled the same
way after kv-lower-to-calls, so its attention runs in kvrt over a paged
cache. Both get the same random inputs: the raised graph gets the past K/V
through kvrt_append into its caches (arguments named by each cache's
kv.replaced_args attribute). Compared: every remaining result, and each
cache's contents after the call against the original's returned present
K/V (kv.replaced_results). Prints one line per comparison and PASS/FAIL.

--padding-mask ARG makes the original's argument #ARG (an integer
[batch, keys] attention_mask) a left-padding mask: ones, except that
sequence b's first 3 * b slots are 0 (padding), so the masks the graph
derives from it hide keys.
"""
import ctypes
import re
import sys

import numpy as np

DTYPES = {"f32": np.float32, "f64": np.float64, "i64": np.int64,
          "i32": np.int32}
# f32 graphs: both sides accumulate in f32 but in different orders.
REL_BOUND = 1e-4


def parse_tensor(text):
    m = re.fullmatch(r"tensor<((?:\d+x)*)(\w+)>", text.strip())
    shape = [int(d) for d in m.group(1).split("x") if d]
    return shape, m.group(2)


def split_top_level(text):
    """Splits at commas outside <> and {} and []."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "<{[(":
            depth += 1
        elif c in ">}])":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_signature(path):
    """Returns (name, args, results) of the module's public function. Each
    arg is a dict: kind tensor/cache, shape/dtype or cache params, attrs."""
    text = open(path).read()
    m = re.search(r"func\.func @(\w+)\((.*?)\)\s*(?:->\s*(.*?))?\s*(?:attributes[^{]*)?\{\n",
                  text, re.S)
    name, args_text, results_text = m.group(1), m.group(2), m.group(3) or ""
    args = []
    for arg in split_top_level(args_text):
        _, type_text = arg.split(":", 1)
        attrs = {}
        am = re.search(r"\{(.*)\}\s*$", type_text)
        if am:
            for key, vals in re.findall(r"(kv\.\w+) = array<i64: ([\d, ]+)>",
                                        am.group(1)):
                attrs[key] = [int(v) for v in vals.split(",")]
            type_text = type_text[:am.start()]
        type_text = type_text.strip()
        if type_text.startswith("!kv.cache"):
            cm = re.match(r"!kv\.cache<heads = (\d+), dim = (\d+), (\w+), "
                          r"capacity = (\d+), #kv\.paged<page = (\d+)>>",
                          type_text)
            args.append({"kind": "cache", "heads": int(cm.group(1)),
                         "dim": int(cm.group(2)), "dtype": cm.group(3),
                         "capacity": int(cm.group(4)),
                         "page": int(cm.group(5)), "attrs": attrs})
        else:
            shape, dtype = parse_tensor(type_text)
            args.append({"kind": "tensor", "shape": shape, "dtype": dtype})
    results_text = results_text.strip()
    if results_text.startswith("("):
        results_text = results_text[1:-1]
    results = [parse_tensor(r) for r in split_top_level(results_text)]
    return name, args, results


def descriptor_type(rank, ctype):
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank),
                   ("strides", ctypes.c_int64 * rank)]
    return type(f"Memref{rank}", (ctypes.Structure,), {"_fields_": fields})


def descriptor(array):
    desc = descriptor_type(array.ndim, None)()
    desc.allocated = desc.aligned = array.ctypes.data
    desc.offset = 0
    for i, (size, stride) in enumerate(zip(array.shape, array.strides)):
        desc.sizes[i] = size
        desc.strides[i] = stride // array.itemsize
    return desc


def result_struct(results):
    fields = [(f"r{i}", descriptor_type(len(shape), None))
              for i, (shape, _) in enumerate(results)]
    return type("Results", (ctypes.Structure,), {"_fields_": fields})()


def read_result(desc, shape, dtype):
    n = int(np.prod(shape))
    ptr = ctypes.cast(desc.aligned, ctypes.POINTER(
        np.ctypeslib.as_ctypes_type(DTYPES[dtype])))
    return np.ctypeslib.as_array(ptr, shape=(n,)).reshape(shape).copy()


def call(lib, name, results, arg_values):
    fn = getattr(lib, "_mlir_ciface_" + name)
    out = result_struct(results)
    keep = []
    params = [ctypes.byref(out)]
    for v in arg_values:
        if isinstance(v, np.ndarray):
            d = descriptor(v)
            keep.append(d)
            params.append(ctypes.byref(d))
        else:
            params.append(ctypes.c_void_p(v))
    fn.restype = None
    fn(*params)
    return [read_result(getattr(out, f"r{i}"), shape, dtype)
            for i, (shape, dtype) in enumerate(results)]


def rel_err(a, b):
    denom = np.linalg.norm(b.astype(np.float64))
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(denom, 1e-30))


def main():
    orig_mlir, raised_mlir, orig_so, raised_so, kvrt_so = sys.argv[1:6]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    rng = np.random.default_rng(seed)
    name, orig_args, orig_results = parse_signature(orig_mlir)
    rname, raised_args, raised_results = parse_signature(raised_mlir)

    padding_arg = (int(sys.argv[sys.argv.index("--padding-mask") + 1])
                   if "--padding-mask" in sys.argv else -1)
    inputs = []
    for number, a in enumerate(orig_args):
        if number == padding_arg:
            mask = np.ones(a["shape"], DTYPES[a["dtype"]])
            for b in range(a["shape"][0]):
                mask[b, :3 * b] = 0
            inputs.append(mask)
        elif a["dtype"].startswith("i"):
            # Token ids and positions: small non-negative integers.
            inputs.append(rng.integers(0, 8, a["shape"]).astype(DTYPES[a["dtype"]]))
        else:
            inputs.append((rng.uniform(-1, 1, a["shape"]) * 0.2).astype(
                DTYPES[a["dtype"]]))

    original = call(ctypes.CDLL(orig_so), name, orig_results, inputs)

    kvrt = ctypes.CDLL(kvrt_so)
    kvrt.kvrt_last_error.restype = ctypes.c_char_p

    def check(status, what):
        if status != 0:
            sys.exit(f"FAIL: {what}: {kvrt.kvrt_last_error().decode()}")

    class CacheDesc(ctypes.Structure):
        _fields_ = [("num_kv_heads", ctypes.c_int32), ("head_dim", ctypes.c_int32),
                    ("dtype", ctypes.c_int32), ("page_size", ctypes.c_int32),
                    ("capacity", ctypes.c_int64)]

    caches = [a for a in raised_args if a["kind"] == "cache"]
    handles, pool, seq_ids, batch = [], None, None, 0
    # A graph without caches (nothing raised, e.g. an encoder) runs as is.
    if caches:
        seqs_arg = raised_args[-1]
        batch = seqs_arg["shape"][0]
        descs = [CacheDesc(c["heads"], c["dim"], 2, c["page"], c["capacity"])
                 for c in caches]
        page_bytes = max(kvrt.kvrt_cache_page_bytes(ctypes.byref(d)) for d in descs)
        pages = sum(batch * c["heads"] * (c["capacity"] // c["page"] + 1)
                    for c in caches)
        pool = ctypes.c_void_p()
        check(kvrt.kvrt_pool_create(0, ctypes.c_int64(page_bytes),
                                    ctypes.c_int64(pages), ctypes.byref(pool)),
              "kvrt_pool_create")
        seq_ids = np.zeros(batch, np.int32)
        for b in range(batch):
            sid = ctypes.c_int32()
            check(kvrt.kvrt_sequence_create(pool, ctypes.byref(sid)), "sequence")
            seq_ids[b] = sid.value
        handles = []
        for c, d in zip(caches, descs):
            h = ctypes.c_void_p()
            check(kvrt.kvrt_cache_create(pool, ctypes.byref(d), ctypes.byref(h)),
                  "kvrt_cache_create")
            handles.append(h)
            if "kv.replaced_args" in c["attrs"]:
                k_arg, v_arg = c["attrs"]["kv.replaced_args"]
                past_k = np.ascontiguousarray(inputs[k_arg].transpose(0, 2, 1, 3))
                past_v = np.ascontiguousarray(inputs[v_arg].transpose(0, 2, 1, 3))
                if past_k.shape[1]:
                    check(kvrt.kvrt_append(
                        h, batch, seq_ids.ctypes.data_as(ctypes.c_void_p),
                        past_k.shape[1], past_k.ctypes.data_as(ctypes.c_void_p),
                        past_v.ctypes.data_as(ctypes.c_void_p), None), "append past")

    replaced = {i for c in caches for i in c["attrs"].get("kv.replaced_args", [])}
    raised_inputs = [v for i, v in enumerate(inputs) if i not in replaced]
    if caches:
        raised_inputs += [h.value for h in handles] + [seq_ids]
    assert len(raised_inputs) == len(raised_args), "argument count mismatch"
    raised = call(ctypes.CDLL(raised_so), rname, raised_results, raised_inputs)

    failed = 0
    dropped = {i for c in caches
               for i in c["attrs"].get("kv.replaced_results", [])}
    kept = [i for i in range(len(orig_results)) if i not in dropped]
    for out_no, orig_no in enumerate(kept):
        err = rel_err(raised[out_no], original[orig_no])
        ok = err <= REL_BOUND and np.isfinite(raised[out_no]).all()
        failed += not ok
        print(f"result {orig_no} {list(original[orig_no].shape)}: rel_err "
              f"{err:.1e} (bound {REL_BOUND:.0e}) {'ok' if ok else 'FAIL'}")
    for layer, (c, h) in enumerate(zip(caches, handles)):
        k_res, v_res = c["attrs"]["kv.replaced_results"]
        for b in range(batch):
            length = ctypes.c_int64()
            check(kvrt.kvrt_cache_sequence_length(h, int(seq_ids[b]),
                                                  ctypes.byref(length)), "len")
            keys = np.zeros((length.value, c["heads"], c["dim"]), np.float32)
            values = np.zeros_like(keys)
            check(kvrt.kvrt_cache_read(h, int(seq_ids[b]),
                                       keys.ctypes.data_as(ctypes.c_void_p),
                                       values.ctypes.data_as(ctypes.c_void_p)),
                  "kvrt_cache_read")
            want_k = original[k_res][b].transpose(1, 0, 2)
            want_v = original[v_res][b].transpose(1, 0, 2)
            ok = (keys.shape == want_k.shape and
                  rel_err(keys, want_k) <= REL_BOUND and
                  rel_err(values, want_v) <= REL_BOUND)
            failed += not ok
            print(f"cache {layer} sequence {b}: {length.value} tokens "
                  f"{'match' if ok else 'DIFFER'} the returned K/V")
    if pool:
        kvrt.kvrt_pool_destroy(pool)
    print(("PASS" if not failed else "FAIL") +
          f": {len(kept)} results and {len(caches) * batch} caches compared, "
          f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
