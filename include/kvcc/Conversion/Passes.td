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
    `__global__` wrapper that instantiates a template of
    `kvrt/device/attention.cuh` with the element type, head dim, GQA group
    size, page size and causality baked in as template arguments
    (attentions with the same constants share it): `pagedDecode`
    (`kvcc_decode_*`) when the op has fewer than 64 query rows (tokens x
    group), else `pagedAttention` (`kvcc_attention_*`, which includes the
    prefill body the runtime uses for such chunks, compiled for
    `kvrt::device::kPrefillMinBlocks` blocks of up to
    `kvrt::device::kPrefillMaxThreads` threads per SM: the warp-specialized
    body's 384 on sm_90a). The entry point
    launches it through `kvrt_attention_launch`.

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

def KVLowerToCalls : Pass<"kv-lower-to-calls", "::mlir::ModuleOp"> {
  let summary = "Lower kv ops mixed with tensor code to kvrt calls";
  let description = [{
    The CPU path for whole model graphs (e.g. the output of
    kv-raise-attention), where kv ops sit among linalg/tensor/arith code that
    upstream MLIR lowers to LLVM. Runs on tensors, before bufferization:

    - `!kv.cache` function arguments become `!llvm.ptr` (a `kvrt_cache *`);
      every function checks each cache with `kvrt_cache_check` on entry;
    - `kv.append` copies its operands into fresh contiguous buffers and
      calls `kvrt_append`; `kv.attention` calls `kvrt_attention_host` into
      a fresh buffer that becomes its result tensor;
    - a failing kvrt call aborts through `cf.assert` with the function's
      name.

    Follow it with upstream's one-shot bufferization (function boundaries,
    identity layouts) and LLVM lowering, then link the result against kvrt;
    see docs/raising.md. The host-only runtime kernels make this a
    reference path for correctness, not a fast one.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::cf::ControlFlowDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // KVCC_CONVERSION_PASSES_TD
