// REQUIRES: nvcc
// The key-score hook's stores in the decode bodies of the kernels kvcc emits
// carry an L2 evict-last policy (kvrt/device/element.cuh's evictLast, which
// associates it with plain C++ stores): the accumulation kernel reads the
// values back from L2 and drops them without a write-back
// (runtime/lib/SplitK.cu). If the association were lost the stores would
// silently turn plain, and the hook slower (decode_profile_h200.md, session
// 11): three hinted stores per decode body (two pairs of half probabilities and
// one float2 of chunk maxima, group 4), and none elsewhere.
// RUN: rm -rf %t && kvcc %kvcc_src/examples/gqa_attention.mlir --target=cuda -o %t > /dev/null
// RUN: %nvcc_ptx %t/gqa_attention.cu -o - | FileCheck %s

// CHECK-LABEL: .entry _Z37kvcc_attention_f16_d128_g4_p16_causal
// CHECK-COUNT-2: st.global.L2::cache_hint.u32
// CHECK: st.global.L2::cache_hint.v2.f32
// CHECK-NOT: cache_hint
// CHECK-LABEL: .entry _Z27kvcc_decode_f16_d128_g4_p16
// CHECK-COUNT-2: st.global.L2::cache_hint.u32
// CHECK: st.global.L2::cache_hint.v2.f32
// CHECK-NOT: cache_hint
