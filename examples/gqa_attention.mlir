// A two-layer GQA attention stack (Llama-3-8B head shapes: 32 query heads,
// 8 kv heads, head dim 128, f16) over paged KV caches of 16-token pages.
//
// `prefill` writes a 61-token prompt (not a multiple of the page) for 2
// sequences into both layers' caches and attends causally over it;
// `decode_step` then appends one token per sequence and attends over the
// whole history. The k-th cache argument of both functions is layer k.
//
//   kvcc examples/gqa_attention.mlir --target=cpu -o out/
//   kvcc-run out/gqa_attention.kvcc --calls prefill,decode_step*4
//
// kvcc-run-calls: prefill,decode_step*4

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>

func.func @prefill(%layer0: !cache, %layer1: !cache, %seqs: tensor<2xi32>,
                   %q0: tensor<2x61x32x128xf16>, %k0: tensor<2x61x8x128xf16>,
                   %v0: tensor<2x61x8x128xf16>, %q1: tensor<2x61x32x128xf16>,
                   %k1: tensor<2x61x8x128xf16>, %v1: tensor<2x61x8x128xf16>)
    -> (tensor<2x61x32x128xf16>, tensor<2x61x32x128xf16>) {
  kv.append %k0, %v0 into %layer0[%seqs]
      : tensor<2x61x8x128xf16>, tensor<2x61x8x128xf16> into !cache[tensor<2xi32>]
  %o0 = kv.attention %q0, %layer0[%seqs] {causal}
      : tensor<2x61x32x128xf16>, !cache[tensor<2xi32>] -> tensor<2x61x32x128xf16>
  kv.append %k1, %v1 into %layer1[%seqs]
      : tensor<2x61x8x128xf16>, tensor<2x61x8x128xf16> into !cache[tensor<2xi32>]
  %o1 = kv.attention %q1, %layer1[%seqs] {causal}
      : tensor<2x61x32x128xf16>, !cache[tensor<2xi32>] -> tensor<2x61x32x128xf16>
  return %o0, %o1 : tensor<2x61x32x128xf16>, tensor<2x61x32x128xf16>
}

func.func @decode_step(%layer0: !cache, %layer1: !cache, %seqs: tensor<2xi32>,
                       %q0: tensor<2x1x32x128xf16>, %k0: tensor<2x1x8x128xf16>,
                       %v0: tensor<2x1x8x128xf16>, %q1: tensor<2x1x32x128xf16>,
                       %k1: tensor<2x1x8x128xf16>, %v1: tensor<2x1x8x128xf16>)
    -> (tensor<2x1x32x128xf16>, tensor<2x1x32x128xf16>) {
  kv.append %k0, %v0 into %layer0[%seqs]
      : tensor<2x1x8x128xf16>, tensor<2x1x8x128xf16> into !cache[tensor<2xi32>]
  %o0 = kv.attention %q0, %layer0[%seqs]
      : tensor<2x1x32x128xf16>, !cache[tensor<2xi32>] -> tensor<2x1x32x128xf16>
  kv.append %k1, %v1 into %layer1[%seqs]
      : tensor<2x1x8x128xf16>, tensor<2x1x8x128xf16> into !cache[tensor<2xi32>]
  %o1 = kv.attention %q1, %layer1[%seqs]
      : tensor<2x1x32x128xf16>, !cache[tensor<2xi32>] -> tensor<2x1x32x128xf16>
  return %o0, %o1 : tensor<2x1x32x128xf16>, tensor<2x1x32x128xf16>
}
