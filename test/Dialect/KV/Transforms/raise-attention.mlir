// RUN: kv-opt %s --split-input-file --kv-raise-attention="remarks=true capacity=64 page-size=4" --verify-diagnostics | FileCheck %s

// MHA decode: linalg.softmax, Kᵀ by linalg.transpose, scale by division by
// √d, scores kept in [B*H, Tq, Tk] form, output expanded back to 4-D.
// CHECK-LABEL: func.func @mha_decode_softmax_op
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x2x1x4xf32>, %[[K:[^:]+]]: tensor<1x2x1x4xf32>, %[[V:[^:]+]]: tensor<1x2x1x4xf32>, %[[C:[^:]+]]: !kv.cache<heads = 2, dim = 4, f32, capacity = 64, #kv.paged<page = 4>> {kv.replaced_args = array<i64: 3, 4>, kv.replaced_results = array<i64: 1, 2>}, %[[S:[^:]+]]: tensor<1xi32> {kv.seq_ids}) -> tensor<1x2x1x4xf32>
// CHECK: %[[KT:.+]] = linalg.transpose ins(%[[K]] : tensor<1x2x1x4xf32>) outs(%{{.+}} : tensor<1x1x2x4xf32>) permutation = [0, 2, 1, 3]
// CHECK: %[[VT:.+]] = linalg.transpose ins(%[[V]] : tensor<1x2x1x4xf32>) outs(%{{.+}} : tensor<1x1x2x4xf32>) permutation = [0, 2, 1, 3]
// CHECK: kv.append %[[KT]], %[[VT]] into %[[C]][%[[S]]]
// CHECK: %[[QT:.+]] = linalg.transpose ins(%[[Q]]
// CHECK: %[[A:.+]] = kv.attention %[[QT]], %[[C]][%[[S]]] {scale = 5.000000e-01 : f32} : tensor<1x1x2x4xf32>
// CHECK: %[[AT:.+]] = linalg.transpose ins(%[[A]] : tensor<1x1x2x4xf32>) outs(%{{.+}} : tensor<1x2x1x4xf32>)
// The collapse back to [B*H, Tq, D] folds with the graph's own expand.
// CHECK-NOT: linalg.batch_matmul
// CHECK-NOT: linalg.softmax
// CHECK: return %[[AT]] : tensor<1x2x1x4xf32>
func.func @mha_decode_softmax_op(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>,
                                 %pk: tensor<1x2x3x4xf32>, %pv: tensor<1x2x3x4xf32>)
    -> (tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %ck = tensor.concat dim(2) %pk, %k : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %cv = tensor.concat dim(2) %pv, %v : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x4xf32>
  %kt = linalg.transpose ins(%ck : tensor<1x2x4x4xf32>) outs(%e4 : tensor<1x2x4x4xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %zero = arith.constant 0.0 : f32
  %e3 = tensor.empty() : tensor<2x1x4xf32>
  %f3 = linalg.fill ins(%zero : f32) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%f3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %sqrtd = arith.constant 2.0 : f32
  %scaled = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                            iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<2x1x4xf32>) outs(%e3 : tensor<2x1x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %d = arith.divf %in, %sqrtd : f32
    linalg.yield %d : f32
  } -> tensor<2x1x4xf32>
  %p = linalg.softmax dimension(2) ins(%scaled : tensor<2x1x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %v3 = tensor.collapse_shape %cv [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%f3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 2, 1, 4] : tensor<2x1x4xf32> into tensor<1x2x1x4xf32>
  return %o4, %ck, %cv : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// GQA prefill (2 query heads per kv head): Kᵀ through the contraction's
// indexing maps, repeat_kv as linalg.broadcast + collapse, a constant causal
// mask, a splat-tensor scale, and a decomposed softmax using maxnumf and a
// multiplication by the reciprocal of the sum. No past: the returned K/V
// become the cache.
// CHECK-LABEL: func.func @gqa_prefill_decomposed
// CHECK-SAME: (%[[Q:[^:]+]]: tensor<1x2x3x4xf16>, %[[K:[^:]+]]: tensor<1x1x3x4xf16>, %[[V:[^:]+]]: tensor<1x1x3x4xf16>, %[[C:[^:]+]]: !kv.cache<heads = 1, dim = 4, f16, capacity = 64, #kv.paged<page = 4>> {kv.replaced_results = array<i64: 1, 2>}, %[[S:[^:]+]]: tensor<1xi32> {kv.seq_ids}) -> tensor<2x3x4xf16>
// CHECK: kv.append %{{.+}}, %{{.+}} into %[[C]][%[[S]]] : tensor<1x3x1x4xf16>, tensor<1x3x1x4xf16>
// CHECK: kv.attention %{{.+}}, %[[C]][%[[S]]] {causal, scale = 5.000000e-01 : f32} : tensor<1x3x2x4xf16>
// CHECK-NOT: linalg.broadcast
// CHECK-NOT: linalg.batch_matmul
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row = affine_map<(d0, d1, d2) -> (d0, d1)>
#mask = affine_map<(d0, d1, d2) -> (d1, d2)>
func.func @gqa_prefill_decomposed(%q: tensor<1x2x3x4xf16>, %k: tensor<1x1x3x4xf16>, %v: tensor<1x1x3x4xf16>)
    -> (tensor<2x3x4xf16>, tensor<1x1x3x4xf16>, tensor<1x1x3x4xf16>) {
  %e5 = tensor.empty() : tensor<1x1x2x3x4xf16>
  %kb = linalg.broadcast ins(%k : tensor<1x1x3x4xf16>) outs(%e5 : tensor<1x1x2x3x4xf16>) dimensions = [2]
  %vb = linalg.broadcast ins(%v : tensor<1x1x3x4xf16>) outs(%e5 : tensor<1x1x2x3x4xf16>) dimensions = [2]
  %k3 = tensor.collapse_shape %kb [[0, 1, 2], [3], [4]] : tensor<1x1x2x3x4xf16> into tensor<2x3x4xf16>
  %v3 = tensor.collapse_shape %vb [[0, 1, 2], [3], [4]] : tensor<1x1x2x3x4xf16> into tensor<2x3x4xf16>
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x3x4xf16> into tensor<2x3x4xf16>
  %zero = arith.constant 0.0 : f16
  %e3 = tensor.empty() : tensor<2x3x3xf16>
  %f3 = linalg.fill ins(%zero : f16) outs(%e3 : tensor<2x3x3xf16>) -> tensor<2x3x3xf16>
  %s = linalg.batch_matmul
      indexing_maps = [affine_map<(b, m, n, k) -> (b, m, k)>, affine_map<(b, m, n, k) -> (b, n, k)>, affine_map<(b, m, n, k) -> (b, m, n)>]
      ins(%q3, %k3 : tensor<2x3x4xf16>, tensor<2x3x4xf16>) outs(%f3 : tensor<2x3x3xf16>) -> tensor<2x3x3xf16>
  %half = arith.constant dense<0.5> : tensor<2x3x3xf16>
  %scaled = linalg.generic {indexing_maps = [#id3, #id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s, %half : tensor<2x3x3xf16>, tensor<2x3x3xf16>) outs(%e3 : tensor<2x3x3xf16>) {
  ^bb0(%in: f16, %c: f16, %out: f16):
    %m = arith.mulf %in, %c : f16
    linalg.yield %m : f16
  } -> tensor<2x3x3xf16>
  %causal = arith.constant dense<[[0.0, 0xFC00, 0xFC00], [0.0, 0.0, 0xFC00], [0.0, 0.0, 0.0]]> : tensor<3x3xf16>
  %masked = linalg.generic {indexing_maps = [#id3, #mask, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%scaled, %causal : tensor<2x3x3xf16>, tensor<3x3xf16>) outs(%e3 : tensor<2x3x3xf16>) {
  ^bb0(%in: f16, %m: f16, %out: f16):
    %a = arith.addf %in, %m : f16
    linalg.yield %a : f16
  } -> tensor<2x3x3xf16>
  %ninf = arith.constant 0xFC00 : f16
  %e2 = tensor.empty() : tensor<2x3xf16>
  %minit = linalg.fill ins(%ninf : f16) outs(%e2 : tensor<2x3xf16>) -> tensor<2x3xf16>
  %max = linalg.generic {indexing_maps = [#id3, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%masked : tensor<2x3x3xf16>) outs(%minit : tensor<2x3xf16>) {
  ^bb0(%in: f16, %acc: f16):
    %m = arith.maxnumf %in, %acc : f16
    linalg.yield %m : f16
  } -> tensor<2x3xf16>
  %sub = linalg.generic {indexing_maps = [#id3, #row, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%masked, %max : tensor<2x3x3xf16>, tensor<2x3xf16>) outs(%e3 : tensor<2x3x3xf16>) {
  ^bb0(%in: f16, %m: f16, %out: f16):
    %d = arith.subf %in, %m : f16
    linalg.yield %d : f16
  } -> tensor<2x3x3xf16>
  %exp = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%sub : tensor<2x3x3xf16>) outs(%e3 : tensor<2x3x3xf16>) {
  ^bb0(%in: f16, %out: f16):
    %x = math.exp %in : f16
    linalg.yield %x : f16
  } -> tensor<2x3x3xf16>
  %zinit = linalg.fill ins(%zero : f16) outs(%e2 : tensor<2x3xf16>) -> tensor<2x3xf16>
  %sum = linalg.generic {indexing_maps = [#id3, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%exp : tensor<2x3x3xf16>) outs(%zinit : tensor<2x3xf16>) {
  ^bb0(%in: f16, %acc: f16):
    %a = arith.addf %in, %acc : f16
    linalg.yield %a : f16
  } -> tensor<2x3xf16>
  %one = arith.constant 1.0 : f16
  %recip = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      ins(%sum : tensor<2x3xf16>) outs(%e2 : tensor<2x3xf16>) {
  ^bb0(%in: f16, %out: f16):
    %r = arith.divf %one, %in : f16
    linalg.yield %r : f16
  } -> tensor<2x3xf16>
  %p = linalg.generic {indexing_maps = [#id3, #row, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%exp, %recip : tensor<2x3x3xf16>, tensor<2x3xf16>) outs(%e3 : tensor<2x3x3xf16>) {
  ^bb0(%in: f16, %r: f16, %out: f16):
    %m = arith.mulf %in, %r : f16
    linalg.yield %m : f16
  } -> tensor<2x3x3xf16>
  %eo = tensor.empty() : tensor<2x3x4xf16>
  %fo = linalg.fill ins(%zero : f16) outs(%eo : tensor<2x3x4xf16>) -> tensor<2x3x4xf16>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x3x3xf16>, tensor<2x3x4xf16>) outs(%fo : tensor<2x3x4xf16>) -> tensor<2x3x4xf16>
  return %o, %k, %v : tensor<2x3x4xf16>, tensor<1x1x3x4xf16>, tensor<1x1x3x4xf16>
}

// -----

// Softmax over the wrong axis: not attention over keys.
// CHECK-LABEL: func.func @softmax_wrong_axis
// CHECK-NOT: kv.attention
func.func @softmax_wrong_axis(%q3: tensor<2x1x4xf32>, %kt3: tensor<2x4x4xf32>, %v3: tensor<2x4x4xf32>) -> tensor<2x1x4xf32> {
  %e3 = tensor.empty() : tensor<2x1x4xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %p = linalg.softmax dimension(1) ins(%s : tensor<2x1x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the softmax is not over the last (key) dimension}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o : tensor<2x1x4xf32>
}

// -----

// A constant mask that hides a visible key is not causal, and on
// [B*H, Tq, Tk] scores it cannot be a run-time mask operand: left alone.
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#mask = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-LABEL: func.func @banded_mask
// CHECK-NOT: kv.attention
func.func @banded_mask(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x3x4xf32>, %v: tensor<1x2x3x4xf32>)
    -> (tensor<2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) {
  %e4 = tensor.empty() : tensor<1x2x4x3xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x3x4xf32>) outs(%e4 : tensor<1x2x4x3xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x3x4xf32> into tensor<2x3x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x3xf32> into tensor<2x4x3xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x3x4xf32> into tensor<2x3x4xf32>
  %e3 = tensor.empty() : tensor<2x3x3xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x3x4xf32>, tensor<2x4x3xf32>) outs(%e3 : tensor<2x3x3xf32>) -> tensor<2x3x3xf32>
  %band = arith.constant dense<[[0.0, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000], [0xFF800000, 0.0, 0.0]]> : tensor<3x3xf32>
  %masked = linalg.generic {indexing_maps = [#id3, #mask, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s, %band : tensor<2x3x3xf32>, tensor<3x3xf32>) outs(%e3 : tensor<2x3x3xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %a = arith.addf %in, %m : f32
    linalg.yield %a : f32
  } -> tensor<2x3x3xf32>
  %p = linalg.softmax dimension(2) ins(%masked : tensor<2x3x3xf32>) outs(%e3 : tensor<2x3x3xf32>) -> tensor<2x3x3xf32>
  %eo = tensor.empty() : tensor<2x3x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the mask changes visible scores (it is not a causal mask); as a run-time mask: a mask that is not a compile-time causal mask needs [batch, heads, tokens, keys] scores, not 3-D ones}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x3x3xf32>, tensor<2x3x4xf32>) outs(%eo : tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return %o, %k, %v : tensor<2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>
}

// -----

// Keys that are also used by something else than attention: the raised form
// cannot provide them, so nothing changes.
// CHECK-LABEL: func.func @keys_used_elsewhere
// CHECK-NOT: kv.attention
func.func @keys_used_elsewhere(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>)
    -> (tensor<2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x4x1xf32>) {
  %e4 = tensor.empty() : tensor<1x2x4x1xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x1x4xf32>) outs(%e4 : tensor<1x2x4x1xf32>) permutation = [0, 1, 3, 2]
  %other = linalg.transpose ins(%k : tensor<1x2x1x4xf32>) outs(%e4 : tensor<1x2x4x1xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x1xf32> into tensor<2x4x1xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %e3 = tensor.empty() : tensor<2x1x1xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x1x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %eo = tensor.empty() : tensor<2x1x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the keys or values are used elsewhere in ways the raised form cannot provide}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x1xf32>, tensor<2x1x4xf32>) outs(%eo : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o, %k, %v, %other : tensor<2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x4x1xf32>
}

// -----

// Keys and values that are not returned: an encoder without a KV cache.
// CHECK-LABEL: func.func @no_cache
// CHECK-NOT: kv.attention
func.func @no_cache(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>) -> tensor<2x1x4xf32> {
  %e4 = tensor.empty() : tensor<1x2x4x1xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x1x4xf32>) outs(%e4 : tensor<1x2x4x1xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x1xf32> into tensor<2x4x1xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %e3 = tensor.empty() : tensor<2x1x1xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x1x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %eo = tensor.empty() : tensor<2x1x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the keys and values are not returned as an updated cache, so there is no KV cache to raise}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x1xf32>, tensor<2x1x4xf32>) outs(%eo : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o : tensor<2x1x4xf32>
}

// -----

// A negative scale is not a softmax scale kv.attention accepts.
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @negative_scale
// CHECK-NOT: kv.attention
func.func @negative_scale(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>)
    -> (tensor<2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) {
  %e4 = tensor.empty() : tensor<1x2x4x1xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x1x4xf32>) outs(%e4 : tensor<1x2x4x1xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x1xf32> into tensor<2x4x1xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %e3 = tensor.empty() : tensor<2x1x1xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %c = arith.constant -0.5 : f32
  %scaled = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<2x1x1xf32>) outs(%e3 : tensor<2x1x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %c : f32
    linalg.yield %m : f32
  } -> tensor<2x1x1xf32>
  %p = linalg.softmax dimension(2) ins(%scaled : tensor<2x1x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %eo = tensor.empty() : tensor<2x1x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the scale is not positive and finite}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x1xf32>, tensor<2x1x4xf32>) outs(%eo : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o, %k, %v : tensor<2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>
}

// -----

// A contraction that is not fed by a softmax is not attention: no remark.
// CHECK-LABEL: func.func @plain_matmul
// CHECK: linalg.batch_matmul
func.func @plain_matmul(%a: tensor<2x3x4xf32>, %b: tensor<2x4x5xf32>) -> tensor<2x3x5xf32> {
  %e = tensor.empty() : tensor<2x3x5xf32>
  %o = linalg.batch_matmul ins(%a, %b : tensor<2x3x4xf32>, tensor<2x4x5xf32>) outs(%e : tensor<2x3x5xf32>) -> tensor<2x3x5xf32>
  return %o : tensor<2x3x5xf32>
}

// -----

// 4-D forms as linalg.generic contractions (Kᵀ through the indexing map), a
// softmax computed in f32 around f16 scores with exp2(x * log2 e), truncated
// back to f16.
#q = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#kt = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#v = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
#o = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#row4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @generic_4d_exp2_upcast
// CHECK-SAME: !kv.cache<heads = 2, dim = 4, f16, capacity = 64, #kv.paged<page = 4>> {kv.replaced_args = array<i64: 3, 4>, kv.replaced_results = array<i64: 1, 2>}
// CHECK: kv.append
// CHECK: %[[A:.+]] = kv.attention %{{.+}} {scale = 5.000000e-01 : f32} : tensor<1x1x2x4xf16>
// CHECK: %[[O:.+]] = linalg.transpose ins(%[[A]]
// CHECK-NOT: math.exp2
// CHECK: return %[[O]] : tensor<1x2x1x4xf16>
func.func @generic_4d_exp2_upcast(%q: tensor<1x2x1x4xf16>, %k: tensor<1x2x1x4xf16>, %v: tensor<1x2x1x4xf16>,
                                  %pk: tensor<1x2x3x4xf16>, %pv: tensor<1x2x3x4xf16>)
    -> (tensor<1x2x1x4xf16>, tensor<1x2x4x4xf16>, tensor<1x2x4x4xf16>) {
  %ck = tensor.concat dim(2) %pk, %k : (tensor<1x2x3x4xf16>, tensor<1x2x1x4xf16>) -> tensor<1x2x4x4xf16>
  %cv = tensor.concat dim(2) %pv, %v : (tensor<1x2x3x4xf16>, tensor<1x2x1x4xf16>) -> tensor<1x2x4x4xf16>
  %zero = arith.constant 0.0 : f16
  %e = tensor.empty() : tensor<1x2x1x4xf16>
  %f = linalg.fill ins(%zero : f16) outs(%e : tensor<1x2x1x4xf16>) -> tensor<1x2x1x4xf16>
  %s = linalg.generic {indexing_maps = [#q, #kt, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %ck : tensor<1x2x1x4xf16>, tensor<1x2x4x4xf16>) outs(%f : tensor<1x2x1x4xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %p = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %p : f16
    linalg.yield %r : f16
  } -> tensor<1x2x1x4xf16>
  %half = arith.constant 0.5 : f16
  %scaled = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x1x4xf16>) outs(%e : tensor<1x2x1x4xf16>) {
  ^bb0(%in: f16, %out: f16):
    %m = arith.mulf %in, %half : f16
    linalg.yield %m : f16
  } -> tensor<1x2x1x4xf16>
  %e32 = tensor.empty() : tensor<1x2x1x4xf32>
  %up = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%scaled : tensor<1x2x1x4xf16>) outs(%e32 : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f16, %out: f32):
    %x = arith.extf %in : f16 to f32
    linalg.yield %x : f32
  } -> tensor<1x2x1x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %zero32 = arith.constant 0.0 : f32
  %er = tensor.empty() : tensor<1x2x1xf32>
  %minit = linalg.fill ins(%ninf : f32) outs(%er : tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
  %max = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%up : tensor<1x2x1x4xf32>) outs(%minit : tensor<1x2x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %m = arith.maximumf %in, %acc : f32
    linalg.yield %m : f32
  } -> tensor<1x2x1xf32>
  %sub = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%up, %max : tensor<1x2x1x4xf32>, tensor<1x2x1xf32>) outs(%e32 : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %d = arith.subf %in, %m : f32
    linalg.yield %d : f32
  } -> tensor<1x2x1x4xf32>
  %log2e = arith.constant 1.44269504 : f32
  %exp = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%sub : tensor<1x2x1x4xf32>) outs(%e32 : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = arith.mulf %in, %log2e : f32
    %x = math.exp2 %t : f32
    linalg.yield %x : f32
  } -> tensor<1x2x1x4xf32>
  %zinit = linalg.fill ins(%zero32 : f32) outs(%er : tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%exp : tensor<1x2x1x4xf32>) outs(%zinit : tensor<1x2x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<1x2x1xf32>
  %p32 = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%exp, %sum : tensor<1x2x1x4xf32>, tensor<1x2x1xf32>) outs(%e32 : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<1x2x1x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%p32 : tensor<1x2x1x4xf32>) outs(%e : tensor<1x2x1x4xf16>) {
  ^bb0(%in: f32, %out: f16):
    %t = arith.truncf %in : f32 to f16
    linalg.yield %t : f16
  } -> tensor<1x2x1x4xf16>
  %o = linalg.generic {indexing_maps = [#q, #v, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %cv : tensor<1x2x1x4xf16>, tensor<1x2x4x4xf16>) outs(%f : tensor<1x2x1x4xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<1x2x1x4xf16>
  return %o, %ck, %cv : tensor<1x2x1x4xf16>, tensor<1x2x4x4xf16>, tensor<1x2x4x4xf16>
}

// -----

// The cache update as tensor.insert_slice of the new token at the end of
// the past buffer (the buffer's last slot is the new token's).
// CHECK-LABEL: func.func @insert_slice_update
// CHECK-SAME: !kv.cache<heads = 2, dim = 4, f32, capacity = 64, #kv.paged<page = 4>> {kv.replaced_args = array<i64: 3, 4>, kv.replaced_results = array<i64: 1, 2>}
// CHECK: kv.append
// CHECK: kv.attention
// CHECK-NOT: tensor.insert_slice
func.func @insert_slice_update(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>,
                               %pk: tensor<1x2x4x4xf32>, %pv: tensor<1x2x4x4xf32>)
    -> (tensor<2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %ck = tensor.insert_slice %k into %pk[0, 0, 3, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf32> into tensor<1x2x4x4xf32>
  %cv = tensor.insert_slice %v into %pv[0, 0, 3, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf32> into tensor<1x2x4x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x4xf32>
  %kt = linalg.transpose ins(%ck : tensor<1x2x4x4xf32>) outs(%e4 : tensor<1x2x4x4xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %v3 = tensor.collapse_shape %cv [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %e3 = tensor.empty() : tensor<2x1x4xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x1x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o, %ck, %cv : tensor<2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// An insert into the middle of the buffer leaves later slots holding stale
// tokens that attention would read: not a cache append.
// CHECK-LABEL: func.func @insert_slice_middle
// CHECK-NOT: kv.attention
func.func @insert_slice_middle(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>,
                               %pk: tensor<1x2x4x4xf32>, %pv: tensor<1x2x4x4xf32>)
    -> (tensor<2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %ck = tensor.insert_slice %k into %pk[0, 0, 1, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf32> into tensor<1x2x4x4xf32>
  %cv = tensor.insert_slice %v into %pv[0, 0, 1, 0] [1, 2, 1, 4] [1, 1, 1, 1] : tensor<1x2x1x4xf32> into tensor<1x2x4x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x4xf32>
  %kt = linalg.transpose ins(%ck : tensor<1x2x4x4xf32>) outs(%e4 : tensor<1x2x4x4xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %v3 = tensor.collapse_shape %cv [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %e3 = tensor.empty() : tensor<2x1x4xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x1x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the cache update inserts somewhere other than the end of the past keys/values}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o, %ck, %cv : tensor<2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// repeat_kv spelled as torch's x[:, :, None].expand(...).reshape(...): an
// expand_shape adding the group dim, a broadcast along it, a collapse.
#bcast = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
#id5 = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
// CHECK-LABEL: func.func @repeat_kv_expand
// CHECK-SAME: !kv.cache<heads = 1, dim = 4, f32
// CHECK: kv.attention %{{.+}} : tensor<1x1x2x4xf32>
func.func @repeat_kv_expand(%q: tensor<1x2x1x4xf32>, %k: tensor<1x1x1x4xf32>, %v: tensor<1x1x1x4xf32>)
    -> (tensor<2x1x4xf32>, tensor<1x1x1x4xf32>, tensor<1x1x1x4xf32>) {
  %ke = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [1, 1, 1, 1, 4] : tensor<1x1x1x4xf32> into tensor<1x1x1x1x4xf32>
  %ve = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [1, 1, 1, 1, 4] : tensor<1x1x1x4xf32> into tensor<1x1x1x1x4xf32>
  %e5 = tensor.empty() : tensor<1x1x2x1x4xf32>
  %kb = linalg.generic {indexing_maps = [#bcast, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%ke : tensor<1x1x1x1x4xf32>) outs(%e5 : tensor<1x1x2x1x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x1x2x1x4xf32>
  %vb = linalg.generic {indexing_maps = [#bcast, #id5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%ve : tensor<1x1x1x1x4xf32>) outs(%e5 : tensor<1x1x2x1x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<1x1x2x1x4xf32>
  %k4 = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x1x2x1x4xf32> into tensor<1x2x1x4xf32>
  %v3 = tensor.collapse_shape %vb [[0, 1, 2], [3], [4]] : tensor<1x1x2x1x4xf32> into tensor<2x1x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x1xf32>
  %kt = linalg.transpose ins(%k4 : tensor<1x2x1x4xf32>) outs(%e4 : tensor<1x2x4x1xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x1xf32> into tensor<2x4x1xf32>
  %e3 = tensor.empty() : tensor<2x1x1xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x1x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %eo = tensor.empty() : tensor<2x1x4xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x1xf32>, tensor<2x1x4xf32>) outs(%eo : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o, %k, %v : tensor<2x1x4xf32>, tensor<1x1x1x4xf32>, tensor<1x1x1x4xf32>
}

// -----

// One head of one sequence: the contractions are 2-D linalg.matmul on
// [tokens, dim] collapses.
// CHECK-LABEL: func.func @single_head_matmul
// CHECK-SAME: !kv.cache<heads = 1, dim = 4, f32
// CHECK: kv.append
// CHECK: %[[A:.+]] = kv.attention %{{.+}} : tensor<1x1x1x4xf32>
// CHECK-NOT: linalg.matmul
func.func @single_head_matmul(%q: tensor<1x1x1x4xf32>, %k: tensor<1x1x1x4xf32>, %v: tensor<1x1x1x4xf32>,
                              %pk: tensor<1x1x3x4xf32>, %pv: tensor<1x1x3x4xf32>)
    -> (tensor<1x1x1x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) {
  %ck = tensor.concat dim(2) %pk, %k : (tensor<1x1x3x4xf32>, tensor<1x1x1x4xf32>) -> tensor<1x1x4x4xf32>
  %cv = tensor.concat dim(2) %pv, %v : (tensor<1x1x3x4xf32>, tensor<1x1x1x4xf32>) -> tensor<1x1x4x4xf32>
  %e4 = tensor.empty() : tensor<1x1x4x4xf32>
  %kt = linalg.transpose ins(%ck : tensor<1x1x4x4xf32>) outs(%e4 : tensor<1x1x4x4xf32>) permutation = [0, 1, 3, 2]
  %q2 = tensor.collapse_shape %q [[0, 1, 2], [3]] : tensor<1x1x1x4xf32> into tensor<1x4xf32>
  %kt2 = tensor.collapse_shape %kt [[0, 1, 2], [3]] : tensor<1x1x4x4xf32> into tensor<4x4xf32>
  %v2 = tensor.collapse_shape %cv [[0, 1, 2], [3]] : tensor<1x1x4x4xf32> into tensor<4x4xf32>
  %e2 = tensor.empty() : tensor<1x4xf32>
  %s = linalg.matmul ins(%q2, %kt2 : tensor<1x4xf32>, tensor<4x4xf32>) outs(%e2 : tensor<1x4xf32>) -> tensor<1x4xf32>
  %p = linalg.softmax dimension(1) ins(%s : tensor<1x4xf32>) outs(%e2 : tensor<1x4xf32>) -> tensor<1x4xf32>
  %o = linalg.matmul ins(%p, %v2 : tensor<1x4xf32>, tensor<4x4xf32>) outs(%e2 : tensor<1x4xf32>) -> tensor<1x4xf32>
  %o4 = tensor.expand_shape %o [[0, 1, 2], [3]] output_shape [1, 1, 1, 4] : tensor<1x4xf32> into tensor<1x1x1x4xf32>
  return %o4, %ck, %cv : tensor<1x1x1x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>
}

// -----

// The scale folded into Q before Q·Kᵀ: the scaled queries are the query and
// kv.attention gets scale 1.
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @scale_folded_into_query
// CHECK: %[[QS:.+]] = linalg.generic
// CHECK: arith.mulf
// CHECK: %[[QT:.+]] = linalg.transpose ins(%[[QS]] : tensor<1x2x1x4xf32>)
// CHECK: kv.attention %[[QT]], %{{.+}} {scale = 1.000000e+00 : f32}
func.func @scale_folded_into_query(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>)
    -> (tensor<2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) {
  %half = arith.constant 0.5 : f32
  %eq = tensor.empty() : tensor<1x2x1x4xf32>
  %qs = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%q : tensor<1x2x1x4xf32>) outs(%eq : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %half : f32
    linalg.yield %m : f32
  } -> tensor<1x2x1x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x1xf32>
  %kt = linalg.transpose ins(%k : tensor<1x2x1x4xf32>) outs(%e4 : tensor<1x2x4x1xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %qs [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x1xf32> into tensor<2x4x1xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %e3 = tensor.empty() : tensor<2x1x1xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<2x1x1xf32>) outs(%e3 : tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %eo = tensor.empty() : tensor<2x1x4xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x1xf32>, tensor<2x1x4xf32>) outs(%eo : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  return %o, %k, %v : tensor<2x1x4xf32>, tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>
}

// -----

// A padding mask from a function argument, [B, 1, Tq, Tk] broadcast over the
// heads and added before the scale: it becomes kv.attention's run-time mask
// operand [B, Tq, Tk], scaled like the scores it was added to.
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#bcast = affine_map<(d0, d1, d2, d3) -> (d0, 0, d2, d3)>
// CHECK-LABEL: func.func @runtime_padding_mask
// CHECK-SAME: %[[M:[^:]+]]: tensor<1x1x1x4xf32>
// CHECK: %[[MASK:.+]] = linalg.generic {{.*}} ins(%[[M]] : tensor<1x1x1x4xf32>) outs(%{{.+}} : tensor<1x1x4xf32>)
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// CHECK: kv.attention %{{.+}}, %{{.+}}[%{{.+}}] mask %[[MASK]] {scale = 5.000000e-01 : f32} : tensor<1x1x2x4xf32>, !kv.cache<{{.+}}>[tensor<1xi32>] mask tensor<1x1x4xf32>
// CHECK-NOT: linalg.softmax
func.func @runtime_padding_mask(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>,
                                %pk: tensor<1x2x3x4xf32>, %pv: tensor<1x2x3x4xf32>, %m: tensor<1x1x1x4xf32>)
    -> (tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %ck = tensor.concat dim(2) %pk, %k : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %cv = tensor.concat dim(2) %pv, %v : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x4xf32>
  %kt = linalg.transpose ins(%ck : tensor<1x2x4x4xf32>) outs(%e4 : tensor<1x2x4x4xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %zero = arith.constant 0.0 : f32
  %e3 = tensor.empty() : tensor<2x1x4xf32>
  %f3 = linalg.fill ins(%zero : f32) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%f3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %s4 = tensor.expand_shape %s [[0, 1], [2], [3]] output_shape [1, 2, 1, 4] : tensor<2x1x4xf32> into tensor<1x2x1x4xf32>
  %es = tensor.empty() : tensor<1x2x1x4xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #bcast, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s4, %m : tensor<1x2x1x4xf32>, tensor<1x1x1x4xf32>) outs(%es : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %mk: f32, %out: f32):
    %a = arith.addf %in, %mk : f32
    linalg.yield %a : f32
  } -> tensor<1x2x1x4xf32>
  %two = arith.constant 2.0 : f32
  %scaled = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%masked : tensor<1x2x1x4xf32>) outs(%es : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %d = arith.divf %in, %two : f32
    linalg.yield %d : f32
  } -> tensor<1x2x1x4xf32>
  %p4 = linalg.softmax dimension(3) ins(%scaled : tensor<1x2x1x4xf32>) outs(%es : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %p = tensor.collapse_shape %p4 [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %v3 = tensor.collapse_shape %cv [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%f3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 2, 1, 4] : tensor<2x1x4xf32> into tensor<1x2x1x4xf32>
  return %o4, %ck, %cv : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// A mask argument that differs between heads (e.g. ALiBi-style biases)
// cannot be kv.attention's per-sequence mask: left alone.
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-LABEL: func.func @per_head_mask
// CHECK-NOT: kv.attention
func.func @per_head_mask(%q: tensor<1x2x1x4xf32>, %k: tensor<1x2x1x4xf32>, %v: tensor<1x2x1x4xf32>,
                         %pk: tensor<1x2x3x4xf32>, %pv: tensor<1x2x3x4xf32>, %m: tensor<1x2x1x4xf32>)
    -> (tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
  %ck = tensor.concat dim(2) %pk, %k : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %cv = tensor.concat dim(2) %pv, %v : (tensor<1x2x3x4xf32>, tensor<1x2x1x4xf32>) -> tensor<1x2x4x4xf32>
  %e4 = tensor.empty() : tensor<1x2x4x4xf32>
  %kt = linalg.transpose ins(%ck : tensor<1x2x4x4xf32>) outs(%e4 : tensor<1x2x4x4xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  %zero = arith.constant 0.0 : f32
  %e3 = tensor.empty() : tensor<2x1x4xf32>
  %f3 = linalg.fill ins(%zero : f32) outs(%e3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%f3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %s4 = tensor.expand_shape %s [[0, 1], [2], [3]] output_shape [1, 2, 1, 4] : tensor<2x1x4xf32> into tensor<1x2x1x4xf32>
  %es = tensor.empty() : tensor<1x2x1x4xf32>
  %masked = linalg.generic {indexing_maps = [#id4, #id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s4, %m : tensor<1x2x1x4xf32>, tensor<1x2x1x4xf32>) outs(%es : tensor<1x2x1x4xf32>) {
  ^bb0(%in: f32, %mk: f32, %out: f32):
    %a = arith.addf %in, %mk : f32
    linalg.yield %a : f32
  } -> tensor<1x2x1x4xf32>
  %p4 = linalg.softmax dimension(3) ins(%masked : tensor<1x2x1x4xf32>) outs(%es : tensor<1x2x1x4xf32>) -> tensor<1x2x1x4xf32>
  %p = tensor.collapse_shape %p4 [[0, 1], [2], [3]] : tensor<1x2x1x4xf32> into tensor<2x1x4xf32>
  %v3 = tensor.collapse_shape %cv [[0, 1], [2], [3]] : tensor<1x2x4x4xf32> into tensor<2x4x4xf32>
  // expected-remark @+1 {{kv-raise-attention: not raised: the additive mask cannot be evaluated at compile time (it depends on a function argument); as a run-time mask: the mask differs between heads; kv.attention's mask is per sequence [batch, tokens, keys]}}
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<2x1x4xf32>, tensor<2x4x4xf32>) outs(%f3 : tensor<2x1x4xf32>) -> tensor<2x1x4xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 2, 1, 4] : tensor<2x1x4xf32> into tensor<1x2x1x4xf32>
  return %o4, %ck, %cv : tensor<1x2x1x4xf32>, tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}
