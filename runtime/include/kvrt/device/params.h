/*===- params.h - Arguments of compiled attention kernels ---------*- C -*-===*
 *
 * The one argument of every `__global__` attention kernel kvcc generates.
 * kvrt_attention_launch fills it; device templates read it. Plain C so that
 * host code, device code and ctypes agree on its layout.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KVRT_DEVICE_PARAMS_H
#define KVRT_DEVICE_PARAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most rows (batch x num_kv_heads) whose tables a launch can carry inline in
 * kvrt_attention_params (inline_rows below). */
#define KVRT_INLINE_ROWS 64

typedef struct kvrt_attention_params {
  /* Pool memory: page p starts at pool_base + p * page_bytes and holds keys
   * [page_size, head_dim] followed by values [page_size, head_dim]. */
  const void *pool_base;
  int64_t page_bytes;
  /* Page table of row r = b * num_kv_heads + h (batch b, kv head h): its
   * ceil(kv_lens[r] / page_size) page ids start at
   * page_indices[page_indptr[r]], in token order, and it holds kv_lens[r]
   * tokens. page_indptr holds one start offset per row; kernels read no
   * other entry, so CSR tables (page_indptr[rows + 1], rows packed in
   * order) and tables whose rows lie anywhere in page_indices (kvrt's
   * device arena, DeviceTables.h) both work. Device memory. */
  const int32_t *page_indptr;
  const int32_t *page_indices;
  const int32_t *kv_lens;
  /* [batch, num_tokens, num_q_heads, head_dim], cache element type. */
  const void *queries;
  void *out;
  int32_t batch;
  int32_t num_tokens;
  int32_t num_q_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t page_size;
  float scale;
  int32_t causal;
  /* Split-K (flash-decoding): the grid's z dimension. Split s of a row
   * covers its pages [s * pages_per_split, (s + 1) * pages_per_split), the
   * last split everything after that. With num_splits <= 1 the kernel writes
   * `out` itself; otherwise it writes each split's normalized fp32 output
   * and log2-sum-exp to the workspace below and the runtime's merge kernel
   * combines them into `out`. */
  int32_t num_splits;
  int32_t pages_per_split;
  /* Workspace of num_splits > 1, rows [batch * num_tokens * num_q_heads]:
   * partial_out[(row * num_splits + s) * head_dim + d] and
   * partial_lse[row * num_splits + s] (log2 units, -inf for no keys). */
  float *partial_out;
  float *partial_lse;
  /* 0: one block per (kv head, query token, split), as above. Otherwise the
   * prefill layout of attention_prefill.cuh, which the runtime picks for
   * chunks of many query tokens: tiles of query_tile_rows of a sequence's
   * token-major (token, group head) query rows, tiles = ceil(num_tokens *
   * group / query_tile_rows) a sequence; num_splits is then 1. 64: blocks
   * of 128 threads, grid (num_kv_heads, batch * tiles, 1), a block per
   * tile. 128 (the warp-specialized body's blocks of 384, sm_90a): a grid
   * of any number of blocks along x (the runtime: one per SM, at most one
   * per tile), each taking the batch * num_kv_heads * tiles tiles in
   * rounds. Every layout takes its block
   * state or tiles from the launch's dynamic shared memory: at least
   * decodeSharedBytes (attention.cuh) for the one-token layout, the
   * bodies' bytes (prefillSharedBytes, prefillWsSharedBytes) for the
   * prefill layout; a launch with less writes NaN. */
  int32_t query_tile_rows;
  /* Per-key attention scores (the hook H2O needs), or null. With it, the
   * kernel (one-token layout only) also writes, for query group r = (b *
   * num_tokens + t) * num_kv_heads + h, its head g (of G) and every visible
   * key slot s, the key's probability relative to a maximum m of the
   * scores of its chunk (slots s / C * C .. + C - 1, C = min(16,
   * page_size)) for that head: exp2(score - m) (score in log2 units, after
   * the scale) to score_scratch[(r * score_stride + s) * G + g] (the
   * group's heads of a key are contiguous) as a float for fp32 kernels and
   * an IEEE half otherwise, and m to score_max[(r * (score_stride / C) + s
   * / C) * G + g]. m must not be below the chunk's scores of that head; the
   * tensor-core body takes the chunk's maximum, the CUDA-core body its
   * page's. Without splits it also writes each query row q = r * G + g's
   * log2-sum-exp to row_lse[q] (the merge kernel writes it with splits).
   * The runtime then adds each slot's probability, score_scratch * 2^(m -
   * row_lse), summed over the group's heads and the tokens, to
   * key_scores[(b * num_kv_heads + h) * key_scores_stride + slot].
   * score_max and score_stride (slots per query group in the workspace: a
   * multiple of 16, at least every row's length; kvrt takes the batch's
   * longest sequence rounded up to 512) follow inline_starts. kvrt starts
   * score_scratch, score_max and row_lse at 128-byte boundaries; the
   * kernels' paired stores and the accumulation's vector loads rely on 16. */
  float *key_scores;
  int64_t key_scores_stride;
  void *score_scratch;
  float *row_lse;
  /* Tables carried in the arguments themselves (small batches), so that a
   * launch needs no upload of them: when inline_rows > 0 (at most
   * KVRT_INLINE_ROWS, and the launch's rows are exactly these), row r holds
   * inline_lens[r] tokens and its page ids start at
   * page_indices[inline_starts[r]]; kv_lens and page_indptr are then not
   * read (kvrt_attention_launch leaves them null). 0: the device tables
   * above. kvrt_attention_launch carries the tables of batches of up to
   * KVRT_INLINE_ROWS rows inline: a kernel must honour inline_rows (the
   * device templates read rows through pagedRow and rowLength, paged.cuh).
   * Code that fills these arguments itself zero-initializes them first. */
  int32_t inline_rows;
  int32_t inline_lens[KVRT_INLINE_ROWS];
  int32_t inline_starts[KVRT_INLINE_ROWS];
  /* The key-score hook's chunk maxima and workspace stride (see key_scores
   * above). Kernels must be compiled against the kvrt headers of the
   * runtime that launches them: this layout and the hook's format change
   * between versions. */
  float *score_max;
  int64_t score_stride;
  /* The cache's element type (a kvrt_dtype, kvrt.h), that of queries and
   * out: a kernel compiled for another type refuses (its NaN then has the
   * launch's element size, so it stays inside `out`). kvrt's launches set
   * it; code that fills these arguments itself must too (0 is fp16). */
  int32_t dtype;
  /* The cache's pages as tensors for sm_90's tensor copies, or null: two
   * CUtensorMaps (128 bytes each, 64-byte aligned, one after the other in
   * device memory written before the launch) of the pool, both 2-byte
   * elements, 128-byte swizzle, zeros out of bounds:
   * [0] the pool as [pages][2 * page_size rows: keys, then values]
   * [head_dim], strides page_bytes and head_dim * 2 bytes, boxes of 64 x
   * min(page_size, 128) x 1 elements (one page's rows);
   * [1] the pool as [pages][2: keys, values][page_size rows][head_dim],
   * strides page_bytes, page_size * head_dim * 2 and head_dim * 2 bytes,
   * boxes of 64 x page_size x 1 x max(1, 128 / page_size) elements (the
   * keys or values of consecutive pages: a 128-key tile on a run of pages).
   * The warp-specialized prefill body gathers its K/V tiles with [0] a
   * page at a time (prefillWsTensorCopies, attention_prefill_ws.cuh: pages
   * of 16 tokens or more), and, where kv_tensor_runs is non-zero, the
   * whole tiles whose pages are consecutive in the pool with one box of
   * [1] per 64 columns (prefillWsRunCopies: pages of 16 to 64 tokens); by
   * cp.async without them; other bodies ignore them. kvrt creates them
   * with each CUDA cache of fp16 or bf16 pages on sm_90 devices and passes
   * them where the launch takes that body with tensor copies: on pages of
   * 32 tokens or more, and on pages of 16 where most of the batch's tiles
   * lie on runs (runtime/lib/TileRuns.h; KVRT_PREFILL_TMA=0: never). Code
   * that fills these arguments itself may leave them null. */
  const void *kv_tensor_map;
  /* Non-zero: kv_tensor_map holds both maps and the warp-specialized
   * prefill body copies whole tiles on runs of consecutive pages with [1]
   * (kvrt sets it with the map; KVRT_PREFILL_TMA_RUNS=0: never). Zero:
   * [1] is never read. */
  int32_t kv_tensor_runs;
} kvrt_attention_params;

#ifdef __cplusplus
}
#endif

#endif /* KVRT_DEVICE_PARAMS_H */
