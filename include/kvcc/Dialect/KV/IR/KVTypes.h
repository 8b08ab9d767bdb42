//===- KVTypes.h - kv dialect types ------------------------------*- C++ -*-===//

#ifndef KVCC_DIALECT_KV_IR_KVTYPES_H
#define KVCC_DIALECT_KV_IR_KVTYPES_H

#include "kvcc/Dialect/KV/IR/KVAttrs.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "kvcc/Dialect/KV/IR/KVTypes.h.inc"

#endif // KVCC_DIALECT_KV_IR_KVTYPES_H
