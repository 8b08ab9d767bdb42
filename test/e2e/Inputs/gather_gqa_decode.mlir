// Hand-written: a GQA decode step whose repeat_kv gathers kv heads with
// constant indices (torch.index_select style): keys repeat each head
// ([0, 0, 1, 1]), with a past cache concatenated and returned.
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#heads = affine_map<(d0, d1, d2, d3) -> (d1)>
#row = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @gather_gqa_decode(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x1x8xf32>, %v: tensor<1x2x1x8xf32>,
                            %pk: tensor<1x2x5x8xf32>, %pv: tensor<1x2x5x8xf32>)
    -> (tensor<1x4x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) {
  %ck = tensor.concat dim(2) %pk, %k : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %cv = tensor.concat dim(2) %pv, %v : (tensor<1x2x5x8xf32>, tensor<1x2x1x8xf32>) -> tensor<1x2x6x8xf32>
  %idx = arith.constant dense<[0, 0, 1, 1]> : tensor<4xi64>
  %er4 = tensor.empty() : tensor<1x4x6x8xf32>
  %kr = linalg.generic {indexing_maps = [#heads, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%idx : tensor<4xi64>) outs(%er4 : tensor<1x4x6x8xf32>) {
  ^bb0(%i: i64, %out: f32):
    %h = arith.index_cast %i : i64 to index
    %b = linalg.index 0 : index
    %t = linalg.index 2 : index
    %d = linalg.index 3 : index
    %x = tensor.extract %ck[%b, %h, %t, %d] : tensor<1x2x6x8xf32>
    linalg.yield %x : f32
  } -> tensor<1x4x6x8xf32>
  %vr = linalg.generic {indexing_maps = [#heads, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%idx : tensor<4xi64>) outs(%er4 : tensor<1x4x6x8xf32>) {
  ^bb0(%i: i64, %out: f32):
    %h = arith.index_cast %i : i64 to index
    %b = linalg.index 0 : index
    %t = linalg.index 2 : index
    %d = linalg.index 3 : index
    %x = tensor.extract %cv[%b, %h, %t, %d] : tensor<1x2x6x8xf32>
    linalg.yield %x : f32
  } -> tensor<1x4x6x8xf32>
  %e4 = tensor.empty() : tensor<1x4x8x6xf32>
  %kt = linalg.transpose ins(%kr : tensor<1x4x6x8xf32>) outs(%e4 : tensor<1x4x8x6xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x4x1x8xf32> into tensor<4x1x8xf32>
  %kt3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<1x4x8x6xf32> into tensor<4x8x6xf32>
  %v3 = tensor.collapse_shape %vr [[0, 1], [2], [3]] : tensor<1x4x6x8xf32> into tensor<4x6x8xf32>
  %zero = arith.constant 0.0 : f32
  %es = tensor.empty() : tensor<4x1x6xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<4x1x6xf32>) -> tensor<4x1x6xf32>
  %s = linalg.batch_matmul ins(%q3, %kt3 : tensor<4x1x8xf32>, tensor<4x8x6xf32>) outs(%fs : tensor<4x1x6xf32>) -> tensor<4x1x6xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %er = tensor.empty() : tensor<4x1xf32>
  %minit = linalg.fill ins(%ninf : f32) outs(%er : tensor<4x1xf32>) -> tensor<4x1xf32>
  %max = linalg.generic {indexing_maps = [#id3, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%s : tensor<4x1x6xf32>) outs(%minit : tensor<4x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %m = arith.maximumf %in, %acc : f32
    linalg.yield %m : f32
  } -> tensor<4x1xf32>
  %ex = linalg.generic {indexing_maps = [#id3, #row, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s, %max : tensor<4x1x6xf32>, tensor<4x1xf32>) outs(%es : tensor<4x1x6xf32>) {
  ^bb0(%in: f32, %m: f32, %out: f32):
    %d = arith.subf %in, %m : f32
    linalg.yield %d : f32
  } -> tensor<4x1x6xf32>
  %exp = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%ex : tensor<4x1x6xf32>) outs(%es : tensor<4x1x6xf32>) {
  ^bb0(%in: f32, %out: f32):
    %x = math.exp %in : f32
    linalg.yield %x : f32
  } -> tensor<4x1x6xf32>
  %zinit = linalg.fill ins(%zero : f32) outs(%er : tensor<4x1xf32>) -> tensor<4x1xf32>
  %sum = linalg.generic {indexing_maps = [#id3, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%exp : tensor<4x1x6xf32>) outs(%zinit : tensor<4x1xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<4x1xf32>
  %p = linalg.generic {indexing_maps = [#id3, #row, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%exp, %sum : tensor<4x1x6xf32>, tensor<4x1xf32>) outs(%es : tensor<4x1x6xf32>) {
  ^bb0(%in: f32, %sm: f32, %out: f32):
    %d = arith.divf %in, %sm : f32
    linalg.yield %d : f32
  } -> tensor<4x1x6xf32>
  %eo = tensor.empty() : tensor<4x1x8xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<4x1x8xf32>) -> tensor<4x1x8xf32>
  %o = linalg.batch_matmul ins(%p, %v3 : tensor<4x1x6xf32>, tensor<4x6x8xf32>) outs(%fo : tensor<4x1x8xf32>) -> tensor<4x1x8xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 4, 1, 8] : tensor<4x1x8xf32> into tensor<1x4x1x8xf32>
  return %o4, %ck, %cv : tensor<1x4x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>
}
