//===- kv-translate.cpp - kvcc's translation driver -------------*- C++ -*-===//
//
// mlir-translate with kvcc's translations: --kv-to-cpp, --kv-to-cuda,
// --kv-to-header and --kv-to-manifest, plus upstream's (e.g. --mlir-to-cpp
// for EmitC produced by kv-opt --kv-lower-to-emitc).
//
//===----------------------------------------------------------------------===//

#include "kvcc/Target/KVTranslate.h"
#include "mlir/InitAllTranslations.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  mlir::registerAllTranslations();
  kvcc::registerKVTranslations();
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "kvcc translation driver\n"));
}
