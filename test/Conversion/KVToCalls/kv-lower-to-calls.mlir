// RUN: kv-opt %s --kv-lower-to-calls | FileCheck %s

!cache = !kv.cache<heads = 2, dim = 4, f32, capacity = 64, #kv.paged<page = 4>>

// CHECK-DAG: func.func private @kvrt_cache_check(!llvm.ptr, i32, i32, i32, i32, i32, i64) -> i32
// CHECK-DAG: func.func private @kvrt_append(!llvm.ptr, i32, !llvm.ptr, i32, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
// CHECK-DAG: func.func private @kvrt_attention_host(!llvm.ptr, i32, !llvm.ptr, i32, i32, !llvm.ptr, !llvm.ptr, f32, i32) -> i32
// CHECK-DAG: func.func private @kvrt_attention_host_masked(!llvm.ptr, i32, !llvm.ptr, i32, i32, !llvm.ptr, !llvm.ptr, f32, i32, !llvm.ptr, i32) -> i32
// CHECK-LABEL: func.func @step
// CHECK-SAME: (%[[X:.+]]: tensor<1x3x4x4xf32>, %[[C:.+]]: !llvm.ptr, %[[S:.+]]: tensor<1xi32>) -> tensor<1x3x4x4xf32>
// CHECK: %[[CHK:.+]] = call @kvrt_cache_check(%[[C]], %c0_i32, %c2_i32, %c4_i32, %c2_i32{{.*}}, %c4_i32{{.*}}, %c64_i64)
// CHECK: %[[OK:.+]] = arith.cmpi eq, %[[CHK]], %c0_i32
// CHECK: cf.assert %[[OK]], "kvrt_cache_check failed in step for argument #1"
// The key tensor comes from other computation: kvrt reads a dense copy.
// CHECK: %[[K:.+]] = arith.addf
// CHECK: %[[KB:.+]] = bufferization.to_buffer %[[K]] read_only : tensor<1x3x2x4xf32> to memref<1x3x2x4xf32>
// CHECK: %[[KC:.+]] = memref.alloc() : memref<1x3x2x4xf32>
// CHECK: %[[KI:.+]] = memref.extract_aligned_pointer_as_index %[[KC]]
// CHECK: %[[KP:.+]] = llvm.inttoptr
// CHECK: memref.copy %[[KB]], %[[KC]]
// CHECK: %[[NULL:.+]] = llvm.mlir.zero : !llvm.ptr
// CHECK: call @kvrt_append(%[[C]], %c1_i32, %{{.+}}, %c3_i32, %[[KP]], %{{.+}}, %[[NULL]])
// CHECK: cf.assert %{{.+}}, "kvrt_append failed in step"
// CHECK: memref.copy %{{.+}} : memref<1x3x4x4xf32> to memref<1x3x4x4xf32>
// CHECK: %[[OUT:.+]] = memref.alloc() : memref<1x3x4x4xf32>
// CHECK: call @kvrt_attention_host(%[[C]], %c1_i32{{.*}}, %{{.+}}, %c3_i32{{.*}}, %c4_i32{{.*}}, %{{.+}}, %{{.+}}, %cst{{.*}}, %c1_i32{{.*}})
// CHECK: cf.assert %{{.+}}, "kvrt_attention_host failed in step"
// CHECK: %[[R:.+]] = bufferization.to_tensor %[[OUT]] restrict writable : memref<1x3x4x4xf32> to tensor<1x3x4x4xf32>
// CHECK: return %[[R]]
// CHECK-NOT: kv.
func.func @step(%x: tensor<1x3x4x4xf32>, %c: !cache, %s: tensor<1xi32>) -> tensor<1x3x4x4xf32> {
  %k0 = tensor.extract_slice %x[0, 0, 0, 0] [1, 3, 2, 4] [1, 1, 1, 1] : tensor<1x3x4x4xf32> to tensor<1x3x2x4xf32>
  %k = arith.addf %k0, %k0 : tensor<1x3x2x4xf32>
  kv.append %k, %k into %c[%s] : tensor<1x3x2x4xf32>, tensor<1x3x2x4xf32> into !cache[tensor<1xi32>]
  %o = kv.attention %x, %c[%s] {causal} : tensor<1x3x4x4xf32>, !cache[tensor<1xi32>] -> tensor<1x3x4x4xf32>
  return %o : tensor<1x3x4x4xf32>
}

// A run-time mask [B, T, S] goes to kvrt_attention_host_masked as a dense
// copy, with its key count S.
// CHECK-LABEL: func.func @masked
// CHECK: %[[MC:.+]] = memref.alloc() : memref<1x3x7xf32>
// CHECK: %[[MI:.+]] = memref.extract_aligned_pointer_as_index %[[MC]]
// CHECK: %[[MI64:.+]] = arith.index_cast %[[MI]]
// CHECK: %[[MP:.+]] = llvm.inttoptr %[[MI64]]
// CHECK: memref.copy %{{.+}}, %[[MC]] : memref<1x3x7xf32> to memref<1x3x7xf32>
// CHECK: call @kvrt_attention_host_masked(%{{.+}}, %c1_i32{{.*}}, %{{.+}}, %c3_i32{{.*}}, %c4_i32{{.*}}, %{{.+}}, %{{.+}}, %cst{{.*}}, %c0_i32{{.*}}, %[[MP]], %c7_i32)
// CHECK: cf.assert %{{.+}}, "kvrt_attention_host_masked failed in masked"
func.func @masked(%x: tensor<1x3x4x4xf32>, %c: !cache, %s: tensor<1xi32>, %m: tensor<1x3x7xf32>) -> tensor<1x3x4x4xf32> {
  %o = kv.attention %x, %c[%s] mask %m : tensor<1x3x4x4xf32>, !cache[tensor<1xi32>] mask tensor<1x3x7xf32> -> tensor<1x3x4x4xf32>
  return %o : tensor<1x3x4x4xf32>
}
