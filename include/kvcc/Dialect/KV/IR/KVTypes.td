//===- KVTypes.td - kv dialect types -----------------------*- tablegen -*-===//

#ifndef KVCC_DIALECT_KV_IR_KVTYPES_TD
#define KVCC_DIALECT_KV_IR_KVTYPES_TD

include "kvcc/Dialect/KV/IR/KVAttrs.td"
include "mlir/IR/AttrTypeBase.td"

class KV_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<KV_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

def KV_CacheType : KV_Type<"Cache", "cache"> {
  let summary = "Handle to one layer's KV cache";
  let description = [{
    A handle to the KV cache of one attention layer, shared by all sequences
    of a batch. Its parameters fix what a compiled program may assume:

    - `heads`: number of kv heads (GQA and MQA queries share them);
    - `dim`: head dimension of keys and values;
    - the element type of stored keys and values: `f16`, `bf16` or `f32`;
    - `capacity`: the most tokens one sequence may hold;
    - the encoding: how tokens are stored (`#kv.paged<page = N>`).

    ```mlir
    !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
    ```
  }];
  let parameters = (ins "int64_t":$numHeads, "int64_t":$headDim,
                        "::mlir::Type":$elementType, "int64_t":$capacity,
                        "::mlir::Attribute":$encoding);
  let assemblyFormat = [{
    `<` `heads` `=` $numHeads `,` `dim` `=` $headDim `,` $elementType `,`
        `capacity` `=` $capacity `,` $encoding `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The paged encoding of this cache.
    PagedEncodingAttr getPagedEncoding() const {
      return ::llvm::cast<PagedEncodingAttr>(getEncoding());
    }
    /// Tokens per page.
    int64_t getPageSize() const { return getPagedEncoding().getPage(); }
  }];
}

#endif // KVCC_DIALECT_KV_IR_KVTYPES_TD
