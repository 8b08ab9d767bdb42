//===- KVOps.h - kv dialect operations ---------------------------*- C++ -*-===//

#ifndef KVCC_DIALECT_KV_IR_KVOPS_H
#define KVCC_DIALECT_KV_IR_KVOPS_H

#include "kvcc/Dialect/KV/IR/KVDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "kvcc/Dialect/KV/IR/KVTypes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "kvcc/Dialect/KV/IR/KVOps.h.inc"

#endif // KVCC_DIALECT_KV_IR_KVOPS_H
