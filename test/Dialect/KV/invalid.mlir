// RUN: kv-opt %s --split-input-file --verify-diagnostics

// expected-error @+2 {{page size (24) must be a power of two between 1 and 1024}}
// expected-error @+1 {{failed to parse KV_CacheType parameter 'encoding'}}
func.func @page_not_pow2(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 24>>)

// -----

// expected-error @+2 {{page size (2048) must be a power of two between 1 and 1024}}
// expected-error @+1 {{failed to parse KV_CacheType parameter 'encoding'}}
func.func @page_too_big(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 2048>>)

// -----

// expected-error @+2 {{page size (0) must be a power of two between 1 and 1024}}
// expected-error @+1 {{failed to parse KV_CacheType parameter 'encoding'}}
func.func @page_zero(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 0>>)

// -----

// expected-error @+1 {{kv head count (0) must be positive}}
func.func @no_heads(%c: !kv.cache<heads = 0, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>)

// -----

// expected-error @+1 {{head dim (-4) must be positive}}
func.func @bad_dim(%c: !kv.cache<heads = 8, dim = -4, f16, capacity = 4096, #kv.paged<page = 16>>)

// -----

// expected-error @+1 {{element type 'i8' is not supported; use f16, bf16 or f32}}
func.func @bad_dtype(%c: !kv.cache<heads = 8, dim = 128, i8, capacity = 4096, #kv.paged<page = 16>>)

// -----

// expected-error @+1 {{capacity (0) must be positive}}
func.func @no_capacity(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 0, #kv.paged<page = 16>>)

// -----

// expected-error @+1 {{encoding 1 : i64 is not a cache encoding; expected #kv.paged}}
func.func @bad_encoding(%c: !kv.cache<heads = 8, dim = 128, f16, capacity = 16, 1>)

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @append_head_count(%c: !cache, %s: tensor<2xi32>, %k: tensor<2x1x4x128xf16>) {
  // expected-error @+1 {{'kv.append' op key head count (4) must equal the cache's kv head count (8)}}
  kv.append %k, %k into %c[%s] : tensor<2x1x4x128xf16>, tensor<2x1x4x128xf16> into !cache[tensor<2xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @append_head_dim(%c: !cache, %s: tensor<2xi32>, %k: tensor<2x1x8x64xf16>) {
  // expected-error @+1 {{'kv.append' op key head dim (64) must equal the cache's head dim (128)}}
  kv.append %k, %k into %c[%s] : tensor<2x1x8x64xf16>, tensor<2x1x8x64xf16> into !cache[tensor<2xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @append_dtype(%c: !cache, %s: tensor<2xi32>, %k: tensor<2x1x8x128xf32>) {
  // expected-error @+1 {{'kv.append' op key element type ('f32') must match the cache's element type ('f16')}}
  kv.append %k, %k into %c[%s] : tensor<2x1x8x128xf32>, tensor<2x1x8x128xf32> into !cache[tensor<2xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @append_kv_mismatch(%c: !cache, %s: tensor<2xi32>, %k: tensor<2x1x8x128xf16>, %v: tensor<2x2x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op key type ('tensor<2x1x8x128xf16>') and value type ('tensor<2x2x8x128xf16>') must be equal}}
  kv.append %k, %v into %c[%s] : tensor<2x1x8x128xf16>, tensor<2x2x8x128xf16> into !cache[tensor<2xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @append_rank(%c: !cache, %s: tensor<2xi32>, %k: tensor<2x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op key must have rank 4 [batch, tokens, heads, head_dim], got 'tensor<2x8x128xf16>'}}
  kv.append %k, %k into %c[%s] : tensor<2x8x128xf16>, tensor<2x8x128xf16> into !cache[tensor<2xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @append_batch(%c: !cache, %s: tensor<3xi32>, %k: tensor<2x1x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op key batch size (2) must equal the number of sequence ids (3)}}
  kv.append %k, %k into %c[%s] : tensor<2x1x8x128xf16>, tensor<2x1x8x128xf16> into !cache[tensor<3xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 16, #kv.paged<page = 16>>
func.func @append_too_many_tokens(%c: !cache, %s: tensor<1xi32>, %k: tensor<1x17x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op key token count (17) exceeds the cache capacity (16)}}
  kv.append %k, %k into %c[%s] : tensor<1x17x8x128xf16>, tensor<1x17x8x128xf16> into !cache[tensor<1xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 16, #kv.paged<page = 16>>
func.func @append_no_tokens(%c: !cache, %s: tensor<1xi32>, %k: tensor<1x0x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op key must hold at least one token}}
  kv.append %k, %k into %c[%s] : tensor<1x0x8x128xf16>, tensor<1x0x8x128xf16> into !cache[tensor<1xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 16, #kv.paged<page = 16>>
func.func @append_no_seqs(%c: !cache, %s: tensor<0xi32>, %k: tensor<0x1x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op sequence ids must name at least one sequence}}
  kv.append %k, %k into %c[%s] : tensor<0x1x8x128xf16>, tensor<0x1x8x128xf16> into !cache[tensor<0xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 16, #kv.paged<page = 16>>
func.func @append_dynamic(%c: !cache, %s: tensor<1xi32>, %k: tensor<1x?x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op key must have a static shape, got 'tensor<1x?x8x128xf16>'}}
  kv.append %k, %k into %c[%s] : tensor<1x?x8x128xf16>, tensor<1x?x8x128xf16> into !cache[tensor<1xi32>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 16, #kv.paged<page = 16>>
func.func @append_seq_type(%c: !cache, %s: tensor<1xi64>, %k: tensor<1x1x8x128xf16>) {
  // expected-error @+1 {{'kv.append' op operand #3 must be 1D tensor of 32-bit signless integer values}}
  kv.append %k, %k into %c[%s] : tensor<1x1x8x128xf16>, tensor<1x1x8x128xf16> into !cache[tensor<1xi64>]
  return
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_gqa(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x12x128xf16>) -> tensor<1x1x12x128xf16> {
  // expected-error @+1 {{'kv.attention' op query head count (12) must be a multiple of the cache's kv head count (8)}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x12x128xf16>, !cache[tensor<1xi32>] -> tensor<1x1x12x128xf16>
  return %o : tensor<1x1x12x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_dim(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x64xf16>) -> tensor<1x1x32x64xf16> {
  // expected-error @+1 {{'kv.attention' op query head dim (64) must equal the cache's head dim (128)}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x64xf16>, !cache[tensor<1xi32>] -> tensor<1x1x32x64xf16>
  return %o : tensor<1x1x32x64xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_dtype(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x128xbf16>) -> tensor<1x1x32x128xbf16> {
  // expected-error @+1 {{'kv.attention' op query element type ('bf16') must match the cache's element type ('f16')}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x128xbf16>, !cache[tensor<1xi32>] -> tensor<1x1x32x128xbf16>
  return %o : tensor<1x1x32x128xbf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_result(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x2x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op result type ('tensor<1x2x32x128xf16>') must equal the query type ('tensor<1x1x32x128xf16>')}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x2x32x128xf16>
  return %o : tensor<1x2x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_scale(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op scale (-1.000000e+00) must be positive and finite}}
  %o = kv.attention %q, %c[%s] {scale = -1.0 : f32} : tensor<1x1x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x1x32x128xf16>
  return %o : tensor<1x1x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4, #kv.paged<page = 4>>
func.func @attention_capacity(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x5x32x128xf16>) -> tensor<1x5x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op query token count (5) exceeds the cache capacity (4)}}
  %o = kv.attention %q, %c[%s] : tensor<1x5x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x5x32x128xf16>
  return %o : tensor<1x5x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_batch(%c: !cache, %s: tensor<2xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op query batch size (1) must equal the number of sequence ids (2)}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x128xf16>, !cache[tensor<2xi32>] -> tensor<1x1x32x128xf16>
  return %o : tensor<1x1x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_rank(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x32x128xf16>) -> tensor<1x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op query must have rank 4 [batch, tokens, heads, head_dim], got 'tensor<1x32x128xf16>'}}
  %o = kv.attention %q, %c[%s] : tensor<1x32x128xf16>, !cache[tensor<1xi32>] -> tensor<1x32x128xf16>
  return %o : tensor<1x32x128xf16>
}

// -----

func.func @attention_not_a_cache(%c: tensor<4xf16>, %s: tensor<1xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op operand #1 must be Handle to one layer's KV cache, but got 'tensor<4xf16>'}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x128xf16>, tensor<4xf16>[tensor<1xi32>] -> tensor<1x1x32x128xf16>
  return %o : tensor<1x1x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 8, dim = 128, f16, capacity = 4096, #kv.paged<page = 16>>
func.func @attention_dynamic_seqs(%c: !cache, %s: tensor<?xi32>, %q: tensor<1x1x32x128xf16>) -> tensor<1x1x32x128xf16> {
  // expected-error @+1 {{'kv.attention' op sequence ids must have a static length, got 'tensor<?xi32>'}}
  %o = kv.attention %q, %c[%s] : tensor<1x1x32x128xf16>, !cache[tensor<?xi32>] -> tensor<1x1x32x128xf16>
  return %o : tensor<1x1x32x128xf16>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f32, capacity = 16, #kv.paged<page = 16>>
func.func @mask_wrong_batch(%c: !cache, %s: tensor<2xi32>, %q: tensor<2x1x8x64xf32>, %m: tensor<1x1x10xf32>) -> tensor<2x1x8x64xf32> {
  // expected-error @+1 {{'kv.attention' op mask shape ('tensor<1x1x10xf32>') must be [batch = 2, tokens = 1, keys]}}
  %o = kv.attention %q, %c[%s] mask %m : tensor<2x1x8x64xf32>, !cache[tensor<2xi32>] mask tensor<1x1x10xf32> -> tensor<2x1x8x64xf32>
  return %o : tensor<2x1x8x64xf32>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f32, capacity = 16, #kv.paged<page = 16>>
func.func @mask_fewer_keys_than_tokens(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x4x8x64xf32>, %m: tensor<1x4x3xf32>) -> tensor<1x4x8x64xf32> {
  // expected-error @+1 {{'kv.attention' op mask key count (3) must be at least the query tokens (4) and at most the cache capacity (16)}}
  %o = kv.attention %q, %c[%s] mask %m : tensor<1x4x8x64xf32>, !cache[tensor<1xi32>] mask tensor<1x4x3xf32> -> tensor<1x4x8x64xf32>
  return %o : tensor<1x4x8x64xf32>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f32, capacity = 16, #kv.paged<page = 16>>
func.func @mask_beyond_capacity(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x8x64xf32>, %m: tensor<1x1x17xf32>) -> tensor<1x1x8x64xf32> {
  // expected-error @+1 {{'kv.attention' op mask key count (17) must be at least the query tokens (1) and at most the cache capacity (16)}}
  %o = kv.attention %q, %c[%s] mask %m : tensor<1x1x8x64xf32>, !cache[tensor<1xi32>] mask tensor<1x1x17xf32> -> tensor<1x1x8x64xf32>
  return %o : tensor<1x1x8x64xf32>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f32, capacity = 16, #kv.paged<page = 16>>
func.func @mask_dynamic(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x8x64xf32>, %m: tensor<1x1x?xf32>) -> tensor<1x1x8x64xf32> {
  // expected-error @+1 {{'kv.attention' op mask type ('tensor<1x1x?xf32>') must have a static shape}}
  %o = kv.attention %q, %c[%s] mask %m : tensor<1x1x8x64xf32>, !cache[tensor<1xi32>] mask tensor<1x1x?xf32> -> tensor<1x1x8x64xf32>
  return %o : tensor<1x1x8x64xf32>
}

// -----

!cache = !kv.cache<heads = 2, dim = 64, f32, capacity = 16, #kv.paged<page = 16>>
func.func @mask_not_f32(%c: !cache, %s: tensor<1xi32>, %q: tensor<1x1x8x64xf32>, %m: tensor<1x1x4xf16>) -> tensor<1x1x8x64xf32> {
  // expected-error @+1 {{'kv.attention' op operand #3 must be 3D tensor of 32-bit float values}}
  %o = kv.attention %q, %c[%s] mask %m : tensor<1x1x8x64xf32>, !cache[tensor<1xi32>] mask tensor<1x1x4xf16> -> tensor<1x1x8x64xf32>
  return %o : tensor<1x1x8x64xf32>
}
