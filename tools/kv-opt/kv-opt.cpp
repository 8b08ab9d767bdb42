//===- kv-opt.cpp - kvcc's optimizer driver ---------------------*- C++ -*-===//
//
// mlir-opt with the kv dialect and kvcc's passes added to everything
// upstream provides, so kv programs can be mixed with any upstream IR.
//
//===----------------------------------------------------------------------===//

#include "kvcc/InitAll.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  kvcc::registerAllPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  kvcc::registerAllDialects(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "kvcc optimizer driver\n", registry));
}
