// RUN: kv-opt %s --kv-lower-to-emitc | FileCheck %s --check-prefix=CPU
// RUN: kv-opt %s --kv-lower-to-emitc=target=cuda | FileCheck %s --check-prefix=CUDA

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>

// CPU: emitc.include "kvrt/kvrt.h"
// CPU-NOT: emitc.include
// CPU-NOT: __global__
// CPU-LABEL: emitc.func @decode
// CPU-SAME: (%[[C:.+]]: !emitc.ptr<!emitc.opaque<"kvrt_cache">>, %[[S:.+]]: !emitc.ptr<!emitc.opaque<"const int32_t">>, %[[Q:.+]]: !emitc.ptr<!emitc.opaque<"const void">>, %[[K:.+]]: !emitc.ptr<!emitc.opaque<"const void">>, %[[V:.+]]: !emitc.ptr<!emitc.opaque<"const void">>, %[[O:.+]]: !emitc.ptr<!emitc.opaque<"void">>) -> i32
// CPU-SAME: specifiers = ["extern \22C\22"]
// CPU: %[[CHK:.+]] = call_opaque "kvrt_cache_check"(%[[C]]) {args = [0 : index, #emitc.opaque<"KVRT_DEVICE_HOST">, 8 : i32, 128 : i32, #emitc.opaque<"KVRT_DTYPE_F16">, 16 : i32, 4096]}
// CPU: verbatim "if ({} != KVRT_OK) return {};" args %[[CHK]], %[[CHK]]
// CPU: %[[APP:.+]] = call_opaque "kvrt_append"(%[[C]], %[[S]], %[[K]], %[[V]]) {args = [0 : index, 4 : i32, 1 : index, 1 : i32, 2 : index, 3 : index, #emitc.opaque<"NULL">]}
// CPU: verbatim "if ({} != KVRT_OK) return {};" args %[[APP]], %[[APP]]
// CPU: %[[ATT:.+]] = call_opaque "kvrt_attention_host"(%[[C]], %[[S]], %[[Q]], %[[O]]) {args = [0 : index, 4 : i32, 1 : index, 1 : i32, 32 : i32, 2 : index, 3 : index, 0.0883883461 : f32, 0 : i32]}
// CPU: verbatim "if ({} != KVRT_OK) return {};" args %[[ATT]], %[[ATT]]
// CPU: %[[OK:.+]] = literal "KVRT_OK" : i32
// CPU: return %[[OK]] : i32

// CUDA: emitc.include "kvrt/kvrt.h"
// CUDA: emitc.include "kvrt/device/attention.cuh"
// CUDA: emitc.func @kvcc_decode_f16_d128_g4_p16(%[[P:.+]]: !emitc.opaque<"kvrt_attention_params">)
// CUDA-SAME: specifiers = ["__global__", "__launch_bounds__(kvrt::device::kDecodeMaxThreads<__half, 128, 4, 16>, kvrt::device::kDecodeMinBlocks<__half, 128, 4, 16>)"]
// CUDA: call_opaque "kvrt::device::pagedDecode"(%[[P]]) {template_args = [!emitc.opaque<"__half">, 128 : i32, 4 : i32, 16 : i32, false]}
// CUDA-LABEL: emitc.func @decode
// CUDA-SAME: %[[O:[^:]+]]: !emitc.ptr<!emitc.opaque<"void">>, %[[STREAM:[^:]+]]: !emitc.ptr<!emitc.opaque<"void">>) -> i32
// CUDA: call_opaque "kvrt_cache_check"({{.+}}) {args = [0 : index, #emitc.opaque<"KVRT_DEVICE_CUDA">
// CUDA: call_opaque "kvrt_append"({{.+}}, %[[STREAM]]) {args = [0 : index, 4 : i32, 1 : index, 1 : i32, 2 : index, 3 : index, 4 : index]}
// CUDA: call_opaque "kvrt_attention_launch"({{.+}}, %[[O]], %[[STREAM]]) {args = [0 : index, 4 : i32, 1 : index, 1 : i32, 32 : i32, 2 : index, 3 : index, 0.0883883461 : f32, 0 : i32, #emitc.opaque<"(const void *)&kvcc_decode_f16_d128_g4_p16">, #emitc.opaque<"kvrt::device::kAttentionThreads">, 4 : index]}
func.func @decode(%cache: !cache, %seqs: tensor<4xi32>, %q: tensor<4x1x32x128xf16>,
                  %k: tensor<4x1x8x128xf16>, %v: tensor<4x1x8x128xf16>) -> tensor<4x1x32x128xf16> {
  kv.append %k, %v into %cache[%seqs]
      : tensor<4x1x8x128xf16>, tensor<4x1x8x128xf16> into !cache[tensor<4xi32>]
  %o = kv.attention %q, %cache[%seqs]
      : tensor<4x1x32x128xf16>, !cache[tensor<4xi32>] -> tensor<4x1x32x128xf16>
  return %o : tensor<4x1x32x128xf16>
}

// Two attentions with the same constants share one kernel; a causal one and
// a bf16 one get their own.
// CUDA: emitc.func @kvcc_decode_f16_d128_g4_p16_causal
// CUDA-SAME: specifiers = ["__global__"
// CUDA: template_args = [!emitc.opaque<"__half">, 128 : i32, 4 : i32, 16 : i32, true]
// CUDA: emitc.func @kvcc_decode_bf16_d64_g1_p64
// CUDA: template_args = [!emitc.opaque<"__nv_bfloat16">, 64 : i32, 1 : i32, 64 : i32, false]
// CUDA-LABEL: emitc.func @prefill_two
// CUDA-COUNT-2: (const void *)&kvcc_decode_f16_d128_g4_p16_causal
// CUDA: (const void *)&kvcc_decode_bf16_d64_g1_p64
// CUDA-NOT: emitc.func @kvcc_decode_f16_d128_g4_p16_causal

// CPU-LABEL: emitc.func @prefill_two
// CPU-COUNT-2: call_opaque "kvrt_attention_host"{{.+}} 1 : i32]}
// CPU: call_opaque "kvrt_attention_host"{{.+}}5.000000e-01 : f32, 0 : i32]}
func.func @prefill_two(%c0: !cache, %c1: !cache,
                       %c2: !kv.cache<heads = 2, dim = 64, bf16, capacity = 64, #kv.paged<page = 64>>,
                       %seqs: tensor<1xi32>, %q: tensor<1x3x32x128xf16>, %qb: tensor<1x3x2x64xbf16>)
    -> (tensor<1x3x32x128xf16>, tensor<1x3x32x128xf16>, tensor<1x3x2x64xbf16>) {
  %a = kv.attention %q, %c0[%seqs] {causal} : tensor<1x3x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x3x32x128xf16>
  %b = kv.attention %q, %c1[%seqs] {causal} : tensor<1x3x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x3x32x128xf16>
  %c = kv.attention %qb, %c2[%seqs] {scale = 0.5 : f32}
      : tensor<1x3x2x64xbf16>, !kv.cache<heads = 2, dim = 64, bf16, capacity = 64, #kv.paged<page = 64>>[tensor<1xi32>] -> tensor<1x3x2x64xbf16>
  return %a, %b, %c : tensor<1x3x32x128xf16>, tensor<1x3x32x128xf16>, tensor<1x3x2x64xbf16>
}

// Private functions and declarations are not entry points: left alone.
// CPU-LABEL: func.func private @helper
// CPU: kv.attention
func.func private @helper(%c: !cache, %seqs: tensor<1xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  %o = kv.attention %q, %c[%seqs] : tensor<1x1x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x1x32x128xf16>
  return %o : tensor<1x1x32x128xf16>
}

// A chunk of at least 64 query rows (16 tokens x group 4) may run in the
// runtime's prefill layout: its kernel instantiates the full template.
// CUDA: emitc.func @kvcc_attention_f16_d128_g4_p16_causal
// CUDA-SAME: specifiers = ["__global__", "__launch_bounds__(kvrt::device::kPrefillMaxThreads, kvrt::device::kPrefillMinBlocks)"]
// CUDA: call_opaque "kvrt::device::pagedAttention"
// CUDA-LABEL: emitc.func @prefill_chunk
// CUDA: (const void *)&kvcc_attention_f16_d128_g4_p16_causal
func.func @prefill_chunk(%c0: !cache, %seqs: tensor<1xi32>, %q: tensor<1x16x32x128xf16>)
    -> tensor<1x16x32x128xf16> {
  %a = kv.attention %q, %c0[%seqs] {causal} : tensor<1x16x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x16x32x128xf16>
  return %a : tensor<1x16x32x128xf16>
}
