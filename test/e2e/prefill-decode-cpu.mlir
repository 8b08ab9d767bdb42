// Prefill then decode over one cache, for the element types and head layouts
// kvrt supports: MHA f32 (page 1), MQA bf16 (page 64), GQA f16 with an
// explicit scale. Prompts are not multiples of the page.
// RUN: rm -rf %t && split-file %s %t
// RUN: kvcc %t/mha_f32.mlir -q -o %t/mha && kvcc-run %t/mha/mha_f32.kvcc --calls 'prefill,decode_step*3' | FileCheck %s --check-prefix=F32
// RUN: kvcc %t/mqa_bf16.mlir -q -o %t/mqa && kvcc-run %t/mqa/mqa_bf16.kvcc --calls 'prefill,decode_step*3' | FileCheck %s --check-prefix=BF16
// RUN: kvcc %t/gqa_scale.mlir -q -o %t/gqa && kvcc-run %t/gqa/gqa_scale.kvcc --calls 'prefill,decode_step*3' | FileCheck %s --check-prefix=F16

// F32: call prefill: ok
// F32-NEXT: attention -> result 0 [2x5x4x32 f32]: rel_err {{.*}} (bound 1.0e-05)
// F32: PASS: 4 calls, 4 outputs checked, 0 failed
// BF16: call prefill: ok
// BF16-NEXT: attention -> result 0 [1x70x8x64 bf16]: rel_err {{.*}} (bound 1.6e-02)
// BF16: PASS: 4 calls, 4 outputs checked, 0 failed
// F16: call prefill: ok
// F16-NEXT: attention -> result 0 [3x19x16x128 f16]: rel_err {{.*}} (bound 2.0e-03)
// F16: PASS: 4 calls, 4 outputs checked, 0 failed

//--- mha_f32.mlir
!cache = !kv.cache<heads = 4, dim = 32, f32, capacity = 16, #kv.paged<page = 1>>
func.func @prefill(%c: !cache, %s: tensor<2xi32>, %q: tensor<2x5x4x32xf32>,
                   %k: tensor<2x5x4x32xf32>, %v: tensor<2x5x4x32xf32>) -> tensor<2x5x4x32xf32> {
  kv.append %k, %v into %c[%s] : tensor<2x5x4x32xf32>, tensor<2x5x4x32xf32> into !cache[tensor<2xi32>]
  %o = kv.attention %q, %c[%s] {causal} : tensor<2x5x4x32xf32>, !cache[tensor<2xi32>] -> tensor<2x5x4x32xf32>
  return %o : tensor<2x5x4x32xf32>
}
func.func @decode_step(%c: !cache, %s: tensor<2xi32>, %q: tensor<2x1x4x32xf32>,
                       %k: tensor<2x1x4x32xf32>, %v: tensor<2x1x4x32xf32>) -> tensor<2x1x4x32xf32> {
  kv.append %k, %v into %c[%s] : tensor<2x1x4x32xf32>, tensor<2x1x4x32xf32> into !cache[tensor<2xi32>]
  %o = kv.attention %q, %c[%s] : tensor<2x1x4x32xf32>, !cache[tensor<2xi32>] -> tensor<2x1x4x32xf32>
  return %o : tensor<2x1x4x32xf32>
}

//--- mqa_bf16.mlir
!cache = !kv.cache<heads = 1, dim = 64, bf16, capacity = 256, #kv.paged<page = 64>>
func.func @prefill(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x70x8x64xbf16>,
                   %k: tensor<1x70x1x64xbf16>, %v: tensor<1x70x1x64xbf16>) -> tensor<1x70x8x64xbf16> {
  kv.append %k, %v into %c[%s] : tensor<1x70x1x64xbf16>, tensor<1x70x1x64xbf16> into !cache[tensor<1xi32>]
  %o = kv.attention %q, %c[%s] {causal} : tensor<1x70x8x64xbf16>, !cache[tensor<1xi32>] -> tensor<1x70x8x64xbf16>
  return %o : tensor<1x70x8x64xbf16>
}
func.func @decode_step(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x8x64xbf16>,
                       %k: tensor<1x1x1x64xbf16>, %v: tensor<1x1x1x64xbf16>) -> tensor<1x1x8x64xbf16> {
  kv.append %k, %v into %c[%s] : tensor<1x1x1x64xbf16>, tensor<1x1x1x64xbf16> into !cache[tensor<1xi32>]
  %o = kv.attention %q, %c[%s] : tensor<1x1x8x64xbf16>, !cache[tensor<1xi32>] -> tensor<1x1x8x64xbf16>
  return %o : tensor<1x1x8x64xbf16>
}

//--- gqa_scale.mlir
!cache = !kv.cache<heads = 2, dim = 128, f16, capacity = 128, #kv.paged<page = 8>>
func.func @prefill(%c: !cache, %s: tensor<3xi32>, %q: tensor<3x19x16x128xf16>,
                   %k: tensor<3x19x2x128xf16>, %v: tensor<3x19x2x128xf16>) -> tensor<3x19x16x128xf16> {
  kv.append %k, %v into %c[%s] : tensor<3x19x2x128xf16>, tensor<3x19x2x128xf16> into !cache[tensor<3xi32>]
  %o = kv.attention %q, %c[%s] {causal, scale = 0.25 : f32} : tensor<3x19x16x128xf16>, !cache[tensor<3xi32>] -> tensor<3x19x16x128xf16>
  return %o : tensor<3x19x16x128xf16>
}
func.func @decode_step(%c: !cache, %s: tensor<3xi32>, %q: tensor<3x1x16x128xf16>,
                       %k: tensor<3x1x2x128xf16>, %v: tensor<3x1x2x128xf16>) -> tensor<3x1x16x128xf16> {
  kv.append %k, %v into %c[%s] : tensor<3x1x2x128xf16>, tensor<3x1x2x128xf16> into !cache[tensor<3xi32>]
  %o = kv.attention %q, %c[%s] {scale = 0.25 : f32} : tensor<3x1x16x128xf16>, !cache[tensor<3xi32>] -> tensor<3x1x16x128xf16>
  return %o : tensor<3x1x16x128xf16>
}
