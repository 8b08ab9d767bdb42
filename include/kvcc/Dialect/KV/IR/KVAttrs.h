//===- KVAttrs.h - kv dialect attributes -------------------------*- C++ -*-===//

#ifndef KVCC_DIALECT_KV_IR_KVATTRS_H
#define KVCC_DIALECT_KV_IR_KVATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"

#define GET_ATTRDEF_CLASSES
#include "kvcc/Dialect/KV/IR/KVAttrs.h.inc"

#endif // KVCC_DIALECT_KV_IR_KVATTRS_H
