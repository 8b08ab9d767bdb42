// RUN: kv-opt %s --cse --canonicalize --split-input-file | FileCheck %s
// kv.attention only reads the cache and kv.append writes it: generic passes
// may merge or drop reads, but never move or drop them across a write.

!cache = !kv.cache<heads = 2, dim = 64, f16, capacity = 64, #kv.paged<page = 16>>

// CHECK-LABEL: func.func @reads_merge
// CHECK-COUNT-1: kv.attention
// CHECK-NOT: kv.attention
func.func @reads_merge(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x4x64xf16>)
    -> (tensor<1x1x4x64xf16>, tensor<1x1x4x64xf16>) {
  %a = kv.attention %q, %c[%s] : tensor<1x1x4x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x4x64xf16>
  %b = kv.attention %q, %c[%s] : tensor<1x1x4x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x4x64xf16>
  return %a, %b : tensor<1x1x4x64xf16>, tensor<1x1x4x64xf16>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f16, capacity = 64, #kv.paged<page = 16>>

// CHECK-LABEL: func.func @write_separates_reads
// CHECK: kv.attention
// CHECK: kv.append
// CHECK: kv.attention
func.func @write_separates_reads(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x4x64xf16>,
                                 %k: tensor<1x1x2x64xf16>)
    -> (tensor<1x1x4x64xf16>, tensor<1x1x4x64xf16>) {
  %a = kv.attention %q, %c[%s] : tensor<1x1x4x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x4x64xf16>
  kv.append %k, %k into %c[%s] : tensor<1x1x2x64xf16>, tensor<1x1x2x64xf16> into !cache[tensor<1xi32>]
  %b = kv.attention %q, %c[%s] : tensor<1x1x4x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x4x64xf16>
  return %a, %b : tensor<1x1x4x64xf16>, tensor<1x1x4x64xf16>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f16, capacity = 64, #kv.paged<page = 16>>

// An unused read is dead; a write never is.
// CHECK-LABEL: func.func @dead_read
// CHECK-NOT: kv.attention
// CHECK: kv.append
// CHECK-NOT: kv.attention
func.func @dead_read(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x4x64xf16>, %k: tensor<1x1x2x64xf16>) {
  %a = kv.attention %q, %c[%s] : tensor<1x1x4x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x4x64xf16>
  kv.append %k, %k into %c[%s] : tensor<1x1x2x64xf16>, tensor<1x1x2x64xf16> into !cache[tensor<1xi32>]
  return
}
