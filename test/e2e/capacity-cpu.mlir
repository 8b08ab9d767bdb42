// A compiled program whose sequences outgrow the cache's capacity fails with
// KVRT_ERROR_CAPACITY on the step that would overflow, after the steps that
// fit were checked; nothing is written by the failing step.
// RUN: rm -rf %t && kvcc %s -q -o %t
// RUN: not kvcc-run %t/capacity-cpu.kvcc --calls 'decode_step*5' 2>&1 | FileCheck %s

!cache = !kv.cache<heads = 1, dim = 64, f32, capacity = 4, #kv.paged<page = 2>>
func.func @decode_step(%c: !cache, %s: tensor<2xi32>, %q: tensor<2x1x2x64xf32>,
                       %k: tensor<2x1x1x64xf32>, %v: tensor<2x1x1x64xf32>) -> tensor<2x1x2x64xf32> {
  kv.append %k, %v into %c[%s] : tensor<2x1x1x64xf32>, tensor<2x1x1x64xf32> into !cache[tensor<2xi32>]
  %o = kv.attention %q, %c[%s] : tensor<2x1x2x64xf32>, !cache[tensor<2xi32>] -> tensor<2x1x2x64xf32>
  return %o : tensor<2x1x2x64xf32>
}

// CHECK: call decode_step #4: ok
// CHECK: FAIL: call decode_step #5: entry returned KVRT_ERROR_CAPACITY: kvrt_append: sequence {{[0-9]+}} would hold 5 tokens, beyond the cache's capacity of 4
