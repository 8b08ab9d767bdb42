//===- KVDialect.td - The kv dialect -----------------------*- tablegen -*-===//
//
// The kv dialect expresses KV-cache operations of transformer attention so
// that compression (eviction, selection, quantization) becomes a compiler
// decision.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_DIALECT_KV_IR_KVDIALECT_TD
#define KVCC_DIALECT_KV_IR_KVDIALECT_TD

include "mlir/IR/OpBase.td"

def KV_Dialect : Dialect {
  let name = "kv";
  let cppNamespace = "::kvcc::kv";
  let summary = "KV-cache operations of transformer attention";
  let description = [{
    The `kv` dialect models the KV cache of transformer attention as a
    first-class, mutable object. A `!kv.cache` value is a handle to one
    layer's cache, like a memref: `kv.append` writes new keys and values into
    it and `kv.attention` reads it. Both declare their memory effects on the
    handle, so no tensor pretends to be mutable.

    Tensors follow one layout throughout: keys and values are
    `[batch, tokens, kv_heads, head_dim]`, queries and attention outputs are
    `[batch, tokens, q_heads, head_dim]`. Which sequences of the cache a batch
    row belongs to is given by a `tensor<Bxi32>` of sequence ids.

    How a cache is stored is its encoding attribute; `#kv.paged` is the
    uncompressed paged layout of the kvrt runtime.
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
}

class KV_Op<string mnemonic, list<Trait> traits = []>
    : Op<KV_Dialect, mnemonic, traits>;

#endif // KVCC_DIALECT_KV_IR_KVDIALECT_TD
