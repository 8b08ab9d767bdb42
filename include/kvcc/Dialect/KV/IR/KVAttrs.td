//===- KVAttrs.td - kv dialect attributes ------------------*- tablegen -*-===//
//
// Cache encodings: how the tokens of a !kv.cache are stored.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_DIALECT_KV_IR_KVATTRS_TD
#define KVCC_DIALECT_KV_IR_KVATTRS_TD

include "kvcc/Dialect/KV/IR/KVDialect.td"
include "mlir/IR/AttrTypeBase.td"

class KV_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<KV_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def KV_PagedEncodingAttr : KV_Attr<"PagedEncoding", "paged"> {
  let summary = "Uncompressed paged storage";
  let description = [{
    Tokens live in fixed-size pages of `page` tokens of one kv head; a page
    table per (sequence, kv head) lists a sequence's pages in token order.
    This is kvrt's native layout: a page holds the keys `[page, head_dim]`
    followed by the values `[page, head_dim]`, in the cache's element type.
    `page` must be a power of two between 1 and 1024.

    ```mlir
    #kv.paged<page = 16>
    ```
  }];
  let parameters = (ins "int64_t":$page);
  let assemblyFormat = "`<` `page` `=` $page `>`";
  let genVerifyDecl = 1;
}

#endif // KVCC_DIALECT_KV_IR_KVATTRS_TD
