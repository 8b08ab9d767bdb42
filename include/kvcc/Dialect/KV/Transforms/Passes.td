//===- Passes.td - kv dialect transformations --------------*- tablegen -*-===//

#ifndef KVCC_DIALECT_KV_TRANSFORMS_PASSES_TD
#define KVCC_DIALECT_KV_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def KVRaiseAttention : Pass<"kv-raise-attention", "::mlir::ModuleOp"> {
  let summary = "Raise linalg attention and its KV-cache update to kv ops";
  let description = [{
    Finds `softmax(scale · Q·Kᵀ [+ mask]) · V` in linalg-on-tensors IR (as
    torch-mlir, IREE's input pipeline and similar front ends emit it)
    together with the KV cache around it, and rewrites it to `kv.append` +
    `kv.attention` over a `!kv.cache` argument.

    Recognized today:
    - Q·Kᵀ and P·V as `linalg.batch_matmul` on `[batch*heads, ...]`
      collapses of 4-D `[batch, heads, tokens, dim]` tensors; Kᵀ from a
      `linalg.transpose`, a transposing `linalg.generic`, or a transposed
      indexing map on the contraction;
    - GQA's repeat_kv as a broadcast (`linalg.generic` or
      `linalg.broadcast`) to `[batch, kv_heads, group, tokens, dim]` then a
      collapse; MQA; plain MHA;
    - the scale as multiplications or divisions by constants (or splat
      constant tensors), on the scores;
    - masks added to the scores: a mask computable at compile time (built
      with `linalg.index` + `arith.cmpi` + `arith.select`, or a constant) is
      evaluated; causal (query `i` sees keys `j <= i + Tk - Tq`, masked
      entries at or below the lowest finite float) or all-zero masks become
      the `causal` flag. Any other mask on `[B, H, Tq, Tk]` scores that is
      the same for every head (e.g. derived from an `attention_mask`
      argument) becomes kv.attention's run-time `mask` operand `[B, Tq, Tk]`;
    - softmax as `linalg.softmax` over the last dim, or decomposed:
      row max (`maximumf`/`maxnumf`), subtract, `math.exp`, row sum,
      divide (or multiply by the reciprocal);
    - the cache: past keys/values arguments concatenated with the new ones
      along the token dim and returned (decode), or the new keys/values
      returned as the cache (prefill).

    The raised function keeps its other arguments and results; the past
    K/V arguments and the returned K/V results disappear; one
    `!kv.cache<heads, dim, type, capacity, #kv.paged<page>>` argument per
    raised attention (in program order) and one `tensor<Bxi32>` of sequence
    ids are appended. See docs/raising.md.

    Anything else is left untouched; with `remarks=true` each attention-like
    contraction that was not raised gets a remark saying why.
  }];
  let options = [
    Option<"capacity", "capacity", "int64_t", /*default=*/"4096",
           "Cache capacity in tokens per sequence (raised to the graph's "
           "own token count when that is larger)">,
    Option<"pageSize", "page-size", "int64_t", /*default=*/"16",
           "Tokens per page of the paged cache encoding">,
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "Emit a remark at every attention-like contraction that is not "
           "raised, saying why">
  ];
  let dependentDialects = ["::kvcc::kv::KVDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // KVCC_DIALECT_KV_TRANSFORMS_PASSES_TD
