// RUN: kv-opt %s | kv-opt | FileCheck %s
// RUN: kv-opt %s --mlir-print-op-generic | kv-opt | FileCheck %s

// CHECK-LABEL: func.func @decode
// CHECK-SAME: %[[CACHE:.+]]: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
// CHECK-SAME: %[[SEQS:[^:]+]]: tensor<4xi32>
// CHECK-SAME: %[[Q:[^:]+]]: tensor<4x1x32x128xf16>
// CHECK-SAME: %[[K:[^:]+]]: tensor<4x1x8x128xf16>
// CHECK-SAME: %[[V:[^:]+]]: tensor<4x1x8x128xf16>
func.func @decode(%cache: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>,
                  %seqs: tensor<4xi32>, %q: tensor<4x1x32x128xf16>,
                  %k: tensor<4x1x8x128xf16>, %v: tensor<4x1x8x128xf16>) -> tensor<4x1x32x128xf16> {
  // CHECK: kv.append %[[K]], %[[V]] into %[[CACHE]][%[[SEQS]]] : tensor<4x1x8x128xf16>, tensor<4x1x8x128xf16> into !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>[tensor<4xi32>]
  kv.append %k, %v into %cache[%seqs]
      : tensor<4x1x8x128xf16>, tensor<4x1x8x128xf16>
        into !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>[tensor<4xi32>]
  // CHECK: %[[O:.+]] = kv.attention %[[Q]], %[[CACHE]][%[[SEQS]]] : tensor<4x1x32x128xf16>, !kv.cache<{{.+}}>[tensor<4xi32>] -> tensor<4x1x32x128xf16>
  %o = kv.attention %q, %cache[%seqs]
      : tensor<4x1x32x128xf16>, !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>[tensor<4xi32>]
        -> tensor<4x1x32x128xf16>
  // CHECK: return %[[O]]
  return %o : tensor<4x1x32x128xf16>
}

// CHECK-LABEL: func.func @prefill_mqa_bf16
func.func @prefill_mqa_bf16(%cache: !kv.cache<heads = 1, dim = 64, bf16, capacity = 128, #kv.paged<page = 64>>,
                            %seqs: tensor<1xi32>, %q: tensor<1x7x12x64xbf16>) -> tensor<1x7x12x64xbf16> {
  // CHECK: kv.attention %{{.+}}, %{{.+}}[%{{.+}}] {causal, scale = 1.250000e-01 : f32} : tensor<1x7x12x64xbf16>, !kv.cache<heads = 1, dim = 64, bf16, capacity = 128, #kv.paged<page = 64>>[tensor<1xi32>] -> tensor<1x7x12x64xbf16>
  %o = kv.attention %q, %cache[%seqs] {causal, scale = 0.125 : f32}
      : tensor<1x7x12x64xbf16>, !kv.cache<heads = 1, dim = 64, bf16, capacity = 128, #kv.paged<page = 64>>[tensor<1xi32>]
        -> tensor<1x7x12x64xbf16>
  return %o : tensor<1x7x12x64xbf16>
}

// CHECK-LABEL: func.func @masked_decode
func.func @masked_decode(%cache: !kv.cache<heads = 2, dim = 64, f32, capacity = 128, #kv.paged<page = 16>>,
                         %seqs: tensor<2xi32>, %q: tensor<2x1x8x64xf32>, %m: tensor<2x1x10xf32>) -> tensor<2x1x8x64xf32> {
  // CHECK: kv.attention %{{.+}}, %{{.+}}[%{{.+}}] mask %{{.+}} {scale = 1.250000e-01 : f32} : tensor<2x1x8x64xf32>, !kv.cache<{{.+}}>[tensor<2xi32>] mask tensor<2x1x10xf32> -> tensor<2x1x8x64xf32>
  %o = kv.attention %q, %cache[%seqs] mask %m {scale = 0.125 : f32}
      : tensor<2x1x8x64xf32>, !kv.cache<heads = 2, dim = 64, f32, capacity = 128, #kv.paged<page = 16>>[tensor<2xi32>] mask tensor<2x1x10xf32>
        -> tensor<2x1x8x64xf32>
  return %o : tensor<2x1x8x64xf32>
}

// CHECK-LABEL: func.func @f32_cache
// CHECK-SAME: !kv.cache<heads = 2, dim = 256, f32, capacity = 1, #kv.paged<page = 1>>
func.func @f32_cache(%cache: !kv.cache<heads = 2, dim = 256, f32, capacity = 1, #kv.paged<page = 1>>) {
  return
}

// The encoding attribute on its own.
// CHECK-LABEL: func.func @encoding_attr
// CHECK-SAME: kv.layout = #kv.paged<page = 1024>
func.func @encoding_attr() attributes {kv.layout = #kv.paged<page = 1024>} {
  return
}
