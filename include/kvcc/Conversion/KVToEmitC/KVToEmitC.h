//===- KVToEmitC.h - Lower kv programs to EmitC ------------------*- C++ -*-===//

#ifndef KVCC_CONVERSION_KVTOEMITC_KVTOEMITC_H
#define KVCC_CONVERSION_KVTOEMITC_KVTOEMITC_H

#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Pass/Pass.h"

namespace kvcc {

#define GEN_PASS_DECL_KVLOWERTOEMITC
#include "kvcc/Conversion/Passes.h.inc"

} // namespace kvcc

#endif // KVCC_CONVERSION_KVTOEMITC_KVTOEMITC_H
