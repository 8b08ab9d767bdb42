// Bad input to the driver: a diagnostic with a location or a clear message,
// and a non-zero exit, never a crash.
// RUN: rm -rf %t && split-file %s %t
// RUN: not kvcc %t/good.mlir --target=tpu -o %t/out 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not kvcc %t/good.mlir --target=cuda --nvcc=%t/no-such-nvcc -o %t/out 2>&1 | FileCheck %s --check-prefix=NVCC
// RUN: not kvcc %t/good.mlir --cxx=%t/no-such-cxx -o %t/out 2>&1 | FileCheck %s --check-prefix=CXX
// RUN: not kvcc %t/malformed.mlir -o %t/out 2>&1 | FileCheck %s --check-prefix=PARSE
// RUN: not kvcc %t/verifier.mlir -o %t/out 2>&1 | FileCheck %s --check-prefix=VERIFY
// RUN: not kvcc %t/empty.mlir -o %t/out 2>&1 | FileCheck %s --check-prefix=EMPTY
// RUN: not kvcc %t/unsupported.mlir --target=cuda -o %t/out 2>&1 | FileCheck %s --check-prefix=NOTSUPP
// RUN: not kvcc %t/missing.mlir -o %t/out 2>&1 | FileCheck %s --check-prefix=MISSING
// --emit=source needs no compiler at all.
// RUN: kvcc %t/good.mlir --target=cuda --nvcc=%t/no-such-nvcc --emit=source -o %t/src | FileCheck %s --check-prefix=SOURCE

// TARGET: error: unknown --target 'tpu'; expected cpu or cuda
// NVCC: error: nvcc not found at '{{.*}}no-such-nvcc'; install the CUDA toolkit, pass --nvcc=PATH, or use --emit=source to write the .cu file only
// CXX: error: no C++ compiler found
// PARSE: malformed.mlir:1:52: error: expected ','
// VERIFY: verifier.mlir:4:3: error: 'kv.append' op key head count (4) must equal the cache's kv head count (8)
// EMPTY: error: '{{.*}}empty.mlir' has no public function to compile
// NOTSUPP: error: '{{.*}}unsupported.mlir' mixes kv ops with other computation: such model graphs compile for --target=cpu only so far
// MISSING: error: cannot read '{{.*}}missing.mlir'
// SOURCE: wrote {{.*}}good.cu
// SOURCE-NOT: compiling

//--- good.mlir
!cache = !kv.cache<heads = 8, dim = 64, f16, capacity = 64, #kv.paged<page = 16>>
func.func @f(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x8x64xf16>) -> tensor<1x1x8x64xf16> {
  %o = kv.attention %q, %c[%s] : tensor<1x1x8x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x8x64xf16>
  return %o : tensor<1x1x8x64xf16>
}

//--- malformed.mlir
func.func @f(%c: !kv.cache<heads = 8, dim = 64, f16>) {
  return
}

//--- verifier.mlir
!cache = !kv.cache<heads = 8, dim = 64, f16, capacity = 64, #kv.paged<page = 16>>
func.func @f(%c: !cache, %s: tensor<1xi32>, %k: tensor<1x1x4x64xf16>) {
  // The line below is line 4 of this file.
  kv.append %k, %k into %c[%s] : tensor<1x1x4x64xf16>, tensor<1x1x4x64xf16> into !cache[tensor<1xi32>]
  return
}

//--- empty.mlir
func.func private @decl(%x: tensor<1xi32>)

//--- unsupported.mlir
!cache = !kv.cache<heads = 8, dim = 64, f16, capacity = 64, #kv.paged<page = 16>>
func.func @f(%c: !cache, %s: tensor<1xi32>) -> tensor<1x1x8x64xf16> {
  // line 3
  %q = arith.constant dense<1.0> : tensor<1x1x8x64xf16>
  %o = kv.attention %q, %c[%s] : tensor<1x1x8x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x8x64xf16>
  return %o : tensor<1x1x8x64xf16>
}
