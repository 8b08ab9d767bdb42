// Upstream mlir-opt, with no knowledge of kvcc, loads the kv dialect and
// passes from the plugin library.
// RUN: mlir-opt %s --load-dialect-plugin=%kv_plugin | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: mlir-opt %s --load-dialect-plugin=%kv_plugin --load-pass-plugin=%kv_plugin --pass-pipeline="builtin.module(kv-lower-to-emitc{target=cuda})" | FileCheck %s --check-prefix=LOWER
// RUN: not mlir-opt %s 2>&1 | FileCheck %s --check-prefix=NOPLUGIN

!cache = !kv.cache<heads = 2, dim = 64, f16, capacity = 128, #kv.paged<page = 16>>

func.func @decode(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x4x64xf16>,
                  %k: tensor<1x1x2x64xf16>) -> tensor<1x1x4x64xf16> {
  kv.append %k, %k into %c[%s] : tensor<1x1x2x64xf16>, tensor<1x1x2x64xf16> into !cache[tensor<1xi32>]
  %o = kv.attention %q, %c[%s] : tensor<1x1x4x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x4x64xf16>
  return %o : tensor<1x1x4x64xf16>
}

// ROUNDTRIP: kv.append
// ROUNDTRIP: kv.attention
// LOWER: emitc.func @kvcc_decode_f16_d64_g2_p16
// LOWER: emitc.func @decode
// LOWER: call_opaque "kvrt_append"
// LOWER: call_opaque "kvrt_attention_launch"
// NOPLUGIN: type created with unregistered dialect
