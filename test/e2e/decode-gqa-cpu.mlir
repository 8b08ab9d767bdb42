// Compiles a GQA decode step (32 query / 8 kv heads, d=128, f16, page 16)
// for the CPU and runs it on random inputs against kvcc-run's float64
// reference; 20 steps cross a page boundary (16 -> 17 tokens).
// RUN: rm -rf %t && kvcc %s --target=cpu -o %t | FileCheck %s --check-prefix=KVCC
// RUN: kvcc-run %t/decode-gqa-cpu.kvcc --calls 'decode_step*20' --seed 7 | FileCheck %s
// A bound tighter than f16 rounding must fail: the check can fail.
// RUN: not kvcc-run %t/decode-gqa-cpu.kvcc --calls 'decode_step*2' --rtol 1e-7 | FileCheck %s --check-prefix=TIGHT

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 64, #kv.paged<page = 16>>

func.func @decode_step(%c: !cache, %s: tensor<4xi32>, %q: tensor<4x1x32x128xf16>,
                       %k: tensor<4x1x8x128xf16>, %v: tensor<4x1x8x128xf16>) -> tensor<4x1x32x128xf16> {
  kv.append %k, %v into %c[%s] : tensor<4x1x8x128xf16>, tensor<4x1x8x128xf16> into !cache[tensor<4xi32>]
  %o = kv.attention %q, %c[%s] : tensor<4x1x32x128xf16>, !cache[tensor<4xi32>] -> tensor<4x1x32x128xf16>
  return %o : tensor<4x1x32x128xf16>
}

// KVCC: entry decode_step(cache0, seq_ids0, query0, key0, value0, out0)
// KVCC: kv.append     4 seqs x 1 token into a cache of 8 kv heads x 128 f16, page 16, capacity 64
// KVCC: kv.attention  4 seqs x 1 query, 32 q heads (GQA group 4), scale 0.0883883, not causal
// KVCC: built {{.*}}libdecode-gqa-cpu.so

// CHECK: target cpu, device cpu
// CHECK: call decode_step #1: ok
// CHECK: call decode_step #17: ok
// CHECK-NEXT: attention -> result 0 [4x1x32x128 f16]: rel_err {{[0-9.]+e-0[4-9]}} (bound 2.0e-03)
// CHECK-NEXT: append -> cache 0: 4 sequences of 17 tokens, K/V bit-exact
// CHECK: PASS: 20 calls, 20 outputs checked, 0 failed

// TIGHT: FAIL
