//===- KVOps.td - kv dialect operations --------------------*- tablegen -*-===//

#ifndef KVCC_DIALECT_KV_IR_KVOPS_TD
#define KVCC_DIALECT_KV_IR_KVOPS_TD

include "kvcc/Dialect/KV/IR/KVDialect.td"
include "kvcc/Dialect/KV/IR/KVTypes.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonTypeConstraints.td"

def KV_KVTensor : RankedTensorOf<[F16, BF16, F32]>;
def KV_SeqIds : 1DTensorOf<[I32]>;

def KV_AppendOp : KV_Op<"append"> {
  let summary = "Writes new keys and values into a cache";
  let description = [{
    Appends `T` new tokens to each of the `B` sequences named by `seq_ids`.
    `key` and `value` are `[B, T, heads, dim]` tensors in the cache's element
    type. The tokens take the positions following each sequence's current
    length, which grows by `T`. At run time the whole batch either fits (all
    pages reserved up front) or the call fails with an error and nothing is
    written.

    ```mlir
    kv.append %k, %v into %cache[%seqs]
        : tensor<4x1x8x128xf16>, tensor<4x1x8x128xf16>
          into !kv.cache<heads = 8, dim = 128, f16, capacity = 4096,
                         #kv.paged<page = 16>>[tensor<4xi32>]
    ```
  }];
  let arguments = (ins KV_KVTensor:$key, KV_KVTensor:$value,
                       Arg<KV_CacheType, "the cache written",
                           [MemRead, MemWrite]>:$cache,
                       KV_SeqIds:$seq_ids);
  let assemblyFormat = [{
    $key `,` $value `into` $cache `[` $seq_ids `]` attr-dict `:`
    type($key) `,` type($value) `into` qualified(type($cache))
    `[` type($seq_ids) `]`
  }];
  let hasVerifier = 1;
}

def KV_AttentionOp : KV_Op<"attention"> {
  let summary = "Attention of queries over a cache";
  let description = [{
    Computes `softmax(scale · Q·Kᵀ [+ causal mask]) · V` for the `T` queries
    of each of the `B` sequences named by `seq_ids`, over the keys and values
    those sequences hold in `cache`. `query` is `[B, T, q_heads, dim]` and the
    result has the same type. The queries are the last `T` positions of each
    sequence, so a decode step is `T = 1` after appending one token, and a
    prefill is `T = prompt length` after appending the prompt.

    - GQA/MQA: `q_heads` must be a multiple of the cache's kv heads; query
      head `h` reads kv head `h / (q_heads / heads)`.
    - `scale` defaults to `1/sqrt(dim)`.
    - With `causal`, query `t` sees keys `[0, len - T + t]`; without it, every
      key the sequence holds.

    - `mask` (optional): an additive f32 mask `[B, T, S]`; `mask[b, t, j]`
      is added to the scaled score of query `t` of sequence `b` against key
      `j`, after `causal` (if set) has chosen the visible keys. A mask is
      built for exactly `S` keys, so every sequence must hold `S` tokens
      when the op runs (the runtime reports a mismatch otherwise); `S` is at
      least `T` and at most the cache capacity. Masked-out entries are
      `-inf` or the most negative float. This is how padding masks that a
      model graph derives from its `attention_mask` input reach kv ops
      (kv-raise-attention). Only the model-graph lowering
      (kv-lower-to-calls, CPU) supports it so far; kv-lower-to-emitc
      rejects it.

    Accumulation is in f32 whatever the element type.

    ```mlir
    %o = kv.attention %q, %cache[%seqs] {causal}
        : tensor<4x1x32x128xf16>,
          !kv.cache<heads = 8, dim = 128, f16, capacity = 4096,
                    #kv.paged<page = 16>>[tensor<4xi32>]
          -> tensor<4x1x32x128xf16>
    %p = kv.attention %q, %cache[%seqs] mask %m
        : tensor<4x1x32x128xf16>,
          !kv.cache<heads = 8, dim = 128, f16, capacity = 4096,
                    #kv.paged<page = 16>>[tensor<4xi32>] mask tensor<4x1x10xf32>
          -> tensor<4x1x32x128xf16>
    ```
  }];
  let arguments = (ins KV_KVTensor:$query,
                       Arg<KV_CacheType, "the cache read", [MemRead]>:$cache,
                       KV_SeqIds:$seq_ids,
                       Optional<TensorRankOf<[F32], [3]>>:$mask,
                       OptionalAttr<F32Attr>:$scale,
                       UnitAttr:$causal);
  let results = (outs KV_KVTensor:$result);
  let assemblyFormat = [{
    $query `,` $cache `[` $seq_ids `]` (`mask` $mask^)? attr-dict `:`
    type($query) `,` qualified(type($cache)) `[` type($seq_ids) `]`
    (`mask` type($mask)^)? `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The softmax scale: the `scale` attribute, or 1/sqrt(head dim).
    float getEffectiveScale();
  }];
}

#endif // KVCC_DIALECT_KV_IR_KVOPS_TD
