// RUN: kv-opt %s --kv-lower-to-emitc --split-input-file --verify-diagnostics
// RUN: not kv-opt %s --split-input-file --kv-lower-to-emitc=target=tpu 2>&1 | FileCheck %s --check-prefix=TARGET
// TARGET: kv-lower-to-emitc: unknown target 'tpu'; expected 'cpu' or 'cuda'

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @other_op(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  // expected-error @+1 {{'arith.addf' op is not supported in a kvcc entry point; the body of 'other_op' may only hold kv.append and kv.attention ops}}
  %q2 = arith.addf %q, %q : tensor<1x1x32x128xf16>
  %o = kv.attention %q2, %c[%s] : tensor<1x1x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x1x32x128xf16>
  return %o : tensor<1x1x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @returns_input(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  // expected-error @+1 {{result #0 must be the result of a kv.attention in this function; kvcc writes results into caller-owned buffers}}
  return %q : tensor<1x1x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @returns_twice(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x128xf16>)
    -> (tensor<1x1x32x128xf16>, tensor<1x1x32x128xf16>) {
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x1x32x128xf16>
  // expected-error @+1 {{result #1 returns the same value as an earlier result}}
  return %o, %o : tensor<1x1x32x128xf16>, tensor<1x1x32x128xf16>
}

// -----

// expected-error @+1 {{argument #1 of 'bad_arg' has type 'memref<4xf16>', which has no kvcc entry-point ABI; expected !kv.cache, tensor<Nxi32> sequence ids or a static f16/bf16/f32 tensor}}
func.func @bad_arg(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>, %m: memref<4xf16>) {
  return
}

// -----

// expected-error @+1 {{entry point 'multi_block' must have a single block}}
func.func @multi_block(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>) {
  cf.br ^bb1
^bb1:
  return
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f32, capacity = 16, #kv.paged<page = 16>>
func.func @masked(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x8x64xf32>, %m: tensor<1x1x4xf32>) -> tensor<1x1x8x64xf32> {
  // expected-error @+1 {{'kv.attention' op with a mask operand is supported in model graphs only (kv-lower-to-calls, CPU target); kvcc entry points and kv-lower-to-emitc do not lower masks yet}}
  %o = kv.attention %q, %c[%s] mask %m : tensor<1x1x8x64xf32>, !cache[tensor<1xi32>] mask tensor<1x1x4xf32> -> tensor<1x1x8x64xf32>
  return %o : tensor<1x1x8x64xf32>
}
