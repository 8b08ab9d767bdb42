//===- Passes.h - kvcc conversion passes -------------------------*- C++ -*-===//

#ifndef KVCC_CONVERSION_PASSES_H
#define KVCC_CONVERSION_PASSES_H

#include "kvcc/Conversion/KVToCalls/KVToCalls.h"
#include "kvcc/Conversion/KVToEmitC/KVToEmitC.h"
#include "mlir/Pass/Pass.h"

namespace kvcc {

#define GEN_PASS_REGISTRATION
#include "kvcc/Conversion/Passes.h.inc"

} // namespace kvcc

#endif // KVCC_CONVERSION_PASSES_H
