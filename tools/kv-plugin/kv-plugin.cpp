//===- kv-plugin.cpp - kvcc as an mlir-opt plugin ---------------*- C++ -*-===//
//
// Lets an upstream mlir-opt load the kv dialect and kvcc's passes:
//   mlir-opt --load-dialect-plugin=libKVPlugin.so \
//            --load-pass-plugin=libKVPlugin.so --kv-lower-to-emitc ...
//
//===----------------------------------------------------------------------===//

#include "kvcc/InitAll.h"
#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/Compiler.h"

extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "KVDialect", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            kvcc::registerAllDialects(*registry);
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "KVPasses", LLVM_VERSION_STRING,
          []() { kvcc::registerAllPasses(); }};
}
