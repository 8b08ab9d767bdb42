//===- Passes.td - kvcc conversion passes ------------------*- tablegen -*-===//

#ifndef KVCC_CONVERSION_PASSES_TD
#define KVCC_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVLowerToEmitC : Pass<"kv-lower-to-emitc", "::mlir::ModuleOp"> {
  let summary = "Lower kv programs to EmitC entry points calling kvrt";
  let description = [{
    Turns every public `func.func` whose body is made of `kv.append` and
    `kv.attention` ops into an `emitc.func` entry point with a C ABI that
    calls the kvrt runtime. The entry point's parameters follow the
    function's arguments, then one output pointer per result:

    | kv-level argument           | C parameter             |
    |-----------------------------|-------------------------|
    | `!kv.cache<...>`            | `kvrt_cache *`          |
    | `tensor<Bxi32>` (seq ids)   | `const int32_t *` (host)|
    | `tensor<...xf16/bf16/f32>`  | `const void *`          |
    | each result                 | `void *` (caller-owned) |
    | (target=cuda) trailing      | `void *stream`          |

    It returns a `kvrt_status` (0 on success). Before touching a cache it
    calls `kvrt_cache_check` so a cache built with other parameters than
    the program was compiled for is reported, not misread.

    With `target=cpu`, attention calls kvrt's reference CPU kernel. With
    `target=cuda`, each distinct `kv.attention` configuration gets one
    `__global__` wrapper that instantiates `kvrt::device::pagedAttention`
    from `kvrt/device/attention.cuh` with the element type, head dim, GQA
    group size, page size and causality baked in as template arguments
    (attentions with the same constants share it); the entry point launches
    it through `kvrt_attention_launch`.

    Functions that are private or declarations are left alone. Anything in
    a public function's body that is not a kv op over the function's
    arguments is reported as an error: this first lowering does not mix kv
    ops with other computation.
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "Code generation target: cpu (kvrt reference kernels) or cuda "
           "(generated kernels over kvrt device templates)">
  ];
  let dependentDialects = ["::mlir::emitc::EmitCDialect"];
}

#endif // KVCC_CONVERSION_PASSES_TD
