//===- KVDialect.h - kv dialect declaration ----------------------*- C++ -*-===//

#ifndef KVCC_DIALECT_KV_IR_KVDIALECT_H
#define KVCC_DIALECT_KV_IR_KVDIALECT_H

#include "mlir/IR/Dialect.h"

#include "kvcc/Dialect/KV/IR/KVDialect.h.inc"

#endif // KVCC_DIALECT_KV_IR_KVDIALECT_H
