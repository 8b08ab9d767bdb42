//===- KVToCalls.h - Lower kv ops among tensor code to kvrt calls -*- C++ -*-===//

#ifndef KVCC_CONVERSION_KVTOCALLS_KVTOCALLS_H
#define KVCC_CONVERSION_KVTOCALLS_KVTOCALLS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Pass/Pass.h"

namespace kvcc {

#define GEN_PASS_DECL_KVLOWERTOCALLS
#include "kvcc/Conversion/Passes.h.inc"

} // namespace kvcc

#endif // KVCC_CONVERSION_KVTOCALLS_KVTOCALLS_H
