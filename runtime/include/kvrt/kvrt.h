/*===- kvrt.h - C API of the kvcc runtime -------------------------*- C -*-===*
 *
 * kvrt owns KV-cache memory (a page pool on the host or on a CUDA device),
 * the page tables of every sequence, and the kernels that append to and
 * attend over paged caches. Programs compiled by kvcc call this API; so can
 * hand-written hosts (serving loops, Python via ctypes).
 *
 * Conventions
 *  - Every function returns a kvrt_status. KVRT_OK is 0; on any other value
 *    kvrt_last_error() returns a message for the calling thread describing the
 *    failure. No function aborts on bad input.
 *  - A failing call leaves all state as it was before the call.
 *  - Tensors are dense, row-major, in the cache's element type:
 *      keys/values [batch, tokens, kv_heads, head_dim]
 *      queries/out [batch, tokens, q_heads,  head_dim]
 *    For a pool on a CUDA device these pointers are device pointers; sequence
 *    id, slot and capacity arrays are always host pointers.
 *  - A page holds `page_size` tokens of one kv head of one cache: first the
 *    keys [page_size, head_dim], then the values [page_size, head_dim]
 *    (quantized formats add scale/zero rows, see kvrt_page_layout).
 *  - Every (sequence, cache, kv head) has its own page table, length and
 *    capacity: heads of one sequence may hold different numbers of tokens.
 *    A head's tokens occupy slots 0 .. length-1; each slot remembers the
 *    position (token index in the sequence) of the token it holds, which
 *    eviction and selection keep (kvrt_cache_read_positions).
 *
 * Thread safety
 *  Calls on different sequences may run concurrently from any threads, also
 *  on the same pool and cache. Locking is per sequence (each call locks the
 *  sequences it names, in id order), plus a short lock around the pool's
 *  page free list, a per-cache lock around device-side bookkeeping of CUDA
 *  pools, and a reader/writer lock that cache creation and destruction take
 *  exclusively. Destroying a pool or cache while another thread uses it is
 *  undefined.
 *
 * Memory reuse on CUDA pools
 *  kvrt orders its own device work on the stream each call receives. Pages a
 *  call frees (destroy, truncate, select) can be handed out by the next
 *  call; work the caller queued on other streams that still reads them must
 *  be finished or ordered first.
 *
 *===----------------------------------------------------------------------===*/
#ifndef KVRT_KVRT_H
#define KVRT_KVRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*--- Status ----------------------------------------------------------------*/

typedef int32_t kvrt_status;
enum {
  KVRT_OK = 0,
  KVRT_ERROR_INVALID_ARGUMENT = 1, /* null pointer, bad shape, bad enum     */
  KVRT_ERROR_OUT_OF_MEMORY = 2,    /* host/device allocation or no pages    */
  KVRT_ERROR_CAPACITY = 3,         /* a sequence would exceed its capacity  */
  KVRT_ERROR_UNKNOWN_SEQUENCE = 4, /* id never created or already freed     */
  KVRT_ERROR_MISMATCH = 5,         /* cache differs from what was compiled  */
  KVRT_ERROR_UNSUPPORTED = 6,      /* e.g. CUDA pool in a CPU-only build    */
  KVRT_ERROR_CUDA = 7,             /* a CUDA runtime call failed            */
  KVRT_ERROR_INVALID_HANDLE = 8,   /* pool/cache never created or destroyed */
  KVRT_ERROR_OUT_OF_RANGE = 9      /* head, slot or position out of range   */
};

/** Message describing the last failure on the calling thread ("" if none). */
const char *kvrt_last_error(void);
/** Name of a status code, e.g. "KVRT_ERROR_CAPACITY". */
const char *kvrt_status_name(kvrt_status status);

/*--- Types -----------------------------------------------------------------*/

typedef enum kvrt_dtype {
  KVRT_DTYPE_F16 = 0,
  KVRT_DTYPE_BF16 = 1,
  KVRT_DTYPE_F32 = 2
} kvrt_dtype;

/** Size in bytes of one element of `dtype`; 0 for an unknown dtype. */
size_t kvrt_dtype_size(kvrt_dtype dtype);

typedef enum kvrt_device {
  KVRT_DEVICE_HOST = 0,
  KVRT_DEVICE_CUDA = 1
} kvrt_device;

/** Returns 1 when this build of kvrt can create CUDA pools, else 0. */
int32_t kvrt_has_cuda(void);

typedef struct kvrt_pool kvrt_pool;
typedef struct kvrt_cache kvrt_cache;

/*--- Pools -----------------------------------------------------------------*/

/** Creates a pool of `num_pages` pages of `page_bytes` bytes each, carved from
 *  one allocation on `device` (aligned host memory or cudaMalloc). */
kvrt_status kvrt_pool_create(kvrt_device device, int64_t page_bytes,
                             int64_t num_pages, kvrt_pool **out);
/** Destroys a pool and every cache created from it. Null is a no-op; a pool
 *  destroyed before fails with KVRT_ERROR_INVALID_HANDLE. */
kvrt_status kvrt_pool_destroy(kvrt_pool *pool);

typedef struct kvrt_pool_stats {
  kvrt_device device;
  int64_t page_bytes;
  int64_t pages_total;
  int64_t pages_free;
  int64_t num_sequences;
  int64_t num_caches;
} kvrt_pool_stats;
/** Fills `out` with the pool's counts (cheap: no scan of page tables). */
kvrt_status kvrt_pool_get_stats(const kvrt_pool *pool, kvrt_pool_stats *out);

/** Memory use of a pool, summed over its caches (see kvrt_cache_stats). */
typedef struct kvrt_pool_usage {
  int64_t pages_total;
  int64_t pages_free;
  int64_t pages_used;  /* pages_total - pages_free */
  int64_t bytes_total; /* pages_total * page_bytes */
  int64_t bytes_held;  /* pages_used * page_bytes */
  int64_t bytes_used;  /* bytes of the tokens stored, each stored page once */
  int64_t waste_bytes; /* bytes_held - bytes_used */
  int64_t table_bytes; /* page tables, stored positions, device mirrors */
} kvrt_pool_usage;
/** Fills `out`; scans every sequence's page tables (O(sequences x heads)),
 *  so it is meant for monitoring, not for every step. */
kvrt_status kvrt_pool_get_usage(const kvrt_pool *pool, kvrt_pool_usage *out);

/*--- Sequences -------------------------------------------------------------*/

/** Registers a new, empty sequence in the pool and returns its id (>= 0). */
kvrt_status kvrt_sequence_create(kvrt_pool *pool, int32_t *out_id);
/** Frees a sequence and returns its pages, in every cache, to the pool (a
 *  page shared with a fork is returned when its last holder lets go).
 *  Destroying it again fails with KVRT_ERROR_UNKNOWN_SEQUENCE. */
kvrt_status kvrt_sequence_destroy(kvrt_pool *pool, int32_t id);

/** Creates sequence `*out_child` holding what `parent` holds in every cache,
 *  with the same capacities and positions. Full pages are shared (reference
 *  counted, copied on the first write by either sequence); a partly filled
 *  last page is copied now, so appends never write a shared page. Needs one
 *  free page per (cache, head) whose last page is partly filled; on a CUDA
 *  pool the copies are queued on `stream`. */
kvrt_status kvrt_sequence_fork(kvrt_pool *pool, int32_t parent, void *stream,
                               int32_t *out_child);

/** Drops, in every cache, the tokens of sequence `id` whose position is
 *  `length` or more, compacting a head's remaining slots in place when
 *  eviction left them out of position order; the next appended token takes
 *  position `length`. Frees the pages no longer needed (including pages
 *  reserved by kvrt_reserve). A no-op for caches holding no position at or
 *  past `length`. Needs a free page where the new last page is shared with
 *  a fork (it is copied). `stream` as for kvrt_sequence_fork. */
kvrt_status kvrt_sequence_truncate(kvrt_pool *pool, int32_t id, int64_t length,
                                   void *stream);

/*--- Caches ----------------------------------------------------------------*/

/** One layer's KV cache. */
typedef struct kvrt_cache_desc {
  int32_t num_kv_heads;
  int32_t head_dim;
  kvrt_dtype dtype;
  int32_t page_size; /* tokens per page; a power of two */
  int64_t capacity;  /* most tokens one sequence may hold in one head */
} kvrt_cache_desc;

/** Bytes one page of `desc` needs: 2 * page_size * head_dim * dtype size. */
int64_t kvrt_cache_page_bytes(const kvrt_cache_desc *desc);

kvrt_status kvrt_cache_create(kvrt_pool *pool, const kvrt_cache_desc *desc,
                              kvrt_cache **out);
/** Destroys a cache and returns its pages to the pool. Null is a no-op; a
 *  cache destroyed before (also with its pool) fails with
 *  KVRT_ERROR_INVALID_HANDLE. */
kvrt_status kvrt_cache_destroy(kvrt_cache *cache);
kvrt_status kvrt_cache_get_desc(const kvrt_cache *cache, kvrt_cache_desc *out);
/** The number of positions sequence `id` has in `cache`: tokens appended,
 *  less those truncated (0 before its first append). The next appended token
 *  takes this position. Without eviction or selection it is every head's
 *  length; a head never holds more tokens than this. */
kvrt_status kvrt_cache_sequence_length(const kvrt_cache *cache, int32_t id,
                                       int64_t *out);

/** Returns KVRT_OK when `cache` matches what a compiled program expects, and
 *  KVRT_ERROR_MISMATCH naming the first differing field otherwise (a
 *  quantized page format never matches: compiled programs read plain
 *  pages). A compiled entry point calls this before touching a cache. */
kvrt_status kvrt_cache_check(const kvrt_cache *cache, kvrt_device device,
                             int32_t num_kv_heads, int32_t head_dim,
                             kvrt_dtype dtype, int32_t page_size,
                             int64_t capacity);

/** Copies the keys and values a sequence holds into dense host arrays
 *  [length, kv_heads, head_dim] with length = kvrt_cache_sequence_length
 *  (either may be null). Row t of head h receives the token in slot t of
 *  head h; rows at or past a head's own length are left untouched. For
 *  plain page formats; for tests and tools. */
kvrt_status kvrt_cache_read(const kvrt_cache *cache, int32_t id, void *keys,
                            void *values);

/*--- Page formats, per-head capacities ---------------------------------------*/

/** How a cache stores each token. The default (all zero) stores K and V in
 *  the cache dtype. Quantized formats store `*_bits`-bit codes and, per group
 *  of `group_size` elements of a row, a scale and a zero in `scale_dtype`:
 *  kvrt allocates, shares, moves and frees such pages; writing and reading
 *  them is left to kernels (kvrt_append and kvrt_cache_read report
 *  KVRT_ERROR_UNSUPPORTED). */
typedef struct kvrt_page_format {
  int32_t key_bits;   /* 0 (unquantized), 2, 4 or 8 */
  int32_t value_bits; /* 0 (unquantized), 2, 4 or 8 */
  int32_t group_size; /* divides head_dim; group_size * bits a multiple of 8 */
  kvrt_dtype scale_dtype;
} kvrt_page_format;

/** Byte layout of one page: four regions, each [page_size, *_row_bytes],
 *  at the given offsets from the page start. A region with 0 row bytes is
 *  absent (scale/zero rows of an unquantized K or V). One token of one head
 *  occupies token_bytes = the sum of the four row sizes. */
typedef struct kvrt_page_layout {
  int64_t page_bytes;
  int64_t token_bytes;
  int64_t key_offset;
  int64_t key_row_bytes;
  int64_t value_offset;
  int64_t value_row_bytes;
  int64_t key_meta_offset; /* scale, zero pairs of the key groups */
  int64_t key_meta_row_bytes;
  int64_t value_meta_offset;
  int64_t value_meta_row_bytes;
} kvrt_page_layout;

/** Computes the page layout of `desc` stored as `format` (null: unquantized),
 *  e.g. to size a pool. Fails with KVRT_ERROR_INVALID_ARGUMENT naming the
 *  bad field. For a null format, page_bytes = kvrt_cache_page_bytes(desc). */
kvrt_status kvrt_page_layout_compute(const kvrt_cache_desc *desc,
                                     const kvrt_page_format *format,
                                     kvrt_page_layout *out);

/** Everything kvrt_cache_create_with_config accepts. */
typedef struct kvrt_cache_config {
  kvrt_cache_desc desc;
  /* Page format; null for unquantized K and V. */
  const kvrt_page_format *format;
  /* [num_kv_heads] capacity each head of a new sequence starts with, each
   * in [1, desc.capacity] (e.g. a PyramidKV layer budget split AdaKV-style
   * across heads); null gives every head desc.capacity. */
  const int64_t *head_capacities;
} kvrt_cache_config;

/** Creates a cache like kvrt_cache_create, with a page format and per-head
 *  capacities. */
kvrt_status kvrt_cache_create_with_config(kvrt_pool *pool,
                                          const kvrt_cache_config *config,
                                          kvrt_cache **out);
/** The page layout of a cache. */
kvrt_status kvrt_cache_get_layout(const kvrt_cache *cache,
                                  kvrt_page_layout *out);

/** Sets the capacity of each head of sequence `id` in `cache`
 *  ([num_kv_heads] values in [1, desc.capacity]), e.g. to lower a
 *  sequence's heads to their budgets after prefill selection. A capacity
 *  below the head's current length fails with KVRT_ERROR_CAPACITY. */
kvrt_status kvrt_cache_set_capacities(kvrt_cache *cache, int32_t id,
                                      const int64_t *head_capacities);
/** Copies the length and the capacity of every head of sequence `id`
 *  ([num_kv_heads] each; either may be null). */
kvrt_status kvrt_cache_get_heads(const kvrt_cache *cache, int32_t id,
                                 int64_t *lengths, int64_t *capacities);
/** Copies the positions of the tokens head `head` of sequence `id` holds,
 *  slot by slot ([length of that head] entries). */
kvrt_status kvrt_cache_read_positions(const kvrt_cache *cache, int32_t id,
                                      int32_t head, int32_t *positions);

/*--- Statistics --------------------------------------------------------------*/

/** Memory use of one cache (one layer). A page shared by forks counts once
 *  in pages and bytes and once per holder in page_refs and tokens. */
typedef struct kvrt_cache_stats {
  int64_t sequences;      /* sequences holding state in the cache */
  int64_t pages;          /* distinct pages held */
  int64_t page_refs;      /* page-table entries over all sequences and heads */
  int64_t reserved_pages; /* entries past a head's last token (kvrt_reserve) */
  int64_t partial_pages;  /* (sequence, head) pairs whose last page is partly
                             filled: at most one each */
  int64_t tokens;         /* slots used, over all sequences and heads */
  int64_t bytes_held;     /* pages * the pool's page bytes */
  int64_t bytes_used;     /* token bytes of the distinct tokens stored */
  int64_t waste_bytes;    /* bytes_held - bytes_used */
  int64_t table_bytes;    /* host page tables, positions kept after
                             eviction, device table mirror */
} kvrt_cache_stats;
/** Fills `out`; scans the cache's page tables (see kvrt_pool_get_usage). */
kvrt_status kvrt_cache_get_stats(const kvrt_cache *cache,
                                 kvrt_cache_stats *out);

/*--- Kernels ---------------------------------------------------------------*/

/** Reserves, in every cache of `caches` (all of one pool) and for every
 *  sequence of `seq_ids`, the pages each head needs to grow by `num_tokens`
 *  tokens, up to its capacity (a head at its capacity evicts rather than
 *  grows). Either every page is reserved or none is: a serving step that
 *  reserves first cannot run out of pages halfway through its layers.
 *  Later appends use reserved pages first; truncate and select free them. */
kvrt_status kvrt_reserve(int32_t num_caches, kvrt_cache *const *caches,
                         int32_t batch, const int32_t *seq_ids,
                         int32_t num_tokens);

/** Appends `num_tokens` new tokens to every head of each of `batch`
 *  sequences; head h of a sequence writes its slots from its own length
 *  on. All pages needed by the whole batch are reserved first: either every
 *  sequence is appended or none is (KVRT_ERROR_CAPACITY when a head would
 *  exceed its capacity). Runs on the pool's device; `stream` is a
 *  cudaStream_t for CUDA pools (may be null) and ignored on the host. */
kvrt_status kvrt_append(kvrt_cache *cache, int32_t batch,
                        const int32_t *seq_ids, int32_t num_tokens,
                        const void *keys, const void *values, void *stream);

/** One decode step with eviction: appends one token (keys/values
 *  [batch, 1, kv_heads, head_dim]) to each sequence, where head h of
 *  sequence b appends at its end when slots[b * kv_heads + h] is negative
 *  and otherwise stores the token in that slot, in place of the evicted
 *  token (no other data moves). The token's position is the sequence's
 *  next position either way. All-or-nothing like kvrt_append (a shared
 *  page that is written is copied first). */
kvrt_status kvrt_append_evict(kvrt_cache *cache, int32_t batch,
                              const int32_t *seq_ids, const void *keys,
                              const void *values, const int32_t *slots,
                              void *stream);

/** Stores one token (key and value rows of head_dim elements) in slot
 *  `slot` of head `head` of sequence `id`, replacing the token there, and
 *  records `position` for it. `position` must be >= 0 and not held by
 *  another slot of the head; the sequence's next position becomes at least
 *  position + 1. */
kvrt_status kvrt_cache_replace_slot(kvrt_cache *cache, int32_t id,
                                    int32_t head, int32_t slot,
                                    const void *key, const void *value,
                                    int32_t position, void *stream);

/** Keeps, in each head h of sequence `id`, only the slots
 *  kept_slots[kept_indptr[h] .. kept_indptr[h + 1]) (strictly increasing,
 *  each below the head's length), e.g. SnapKV's selection at the end of
 *  prefill. Kept tokens move down to slots 0, 1, ... in order, with their
 *  positions; pages no longer needed (also reserved ones) are freed.
 *  kept_indptr has num_kv_heads + 1 entries, starting at 0. */
kvrt_status kvrt_cache_select(kvrt_cache *cache, int32_t id,
                              const int32_t *kept_indptr,
                              const int32_t *kept_slots, void *stream);

/** Reference attention on a host pool: the `num_tokens` queries of each
 *  sequence are its last `num_tokens` positions. Head h attends over the
 *  tokens it holds (length_h of them): with `causal` query i sees slots
 *  [0, length_h - num_tokens + i], else all of them; a query that sees no
 *  slot outputs zeros. `num_q_heads` must be a multiple of the cache's kv
 *  heads (GQA). The scores are scaled by `scale`, which must be positive
 *  and finite (typically 1/sqrt(head_dim); KVRT_ERROR_INVALID_ARGUMENT
 *  otherwise, also for kvrt_attention_launch). fp32 accumulation. */
kvrt_status kvrt_attention_host(const kvrt_cache *cache, int32_t batch,
                                const int32_t *seq_ids, int32_t num_tokens,
                                int32_t num_q_heads, const void *queries,
                                void *out, float scale, int32_t causal);

/** kvrt_attention_host with an additive mask: `mask` is fp32
 *  [batch, num_tokens, mask_keys] and mask[b][t][j] is added to the scaled
 *  score of query t of sequence b against slot j, after the `causal` rule
 *  (if set) has chosen the visible slots. Every kv head of every sequence
 *  must hold exactly `mask_keys` tokens (KVRT_ERROR_MISMATCH otherwise): the
 *  mask was built for that many keys, e.g. by a model graph from its
 *  `attention_mask` input. Masked-out entries are -inf or the most negative
 *  float; a query whose every visible score is -inf outputs zeros. */
kvrt_status kvrt_attention_host_masked(const kvrt_cache *cache, int32_t batch,
                                       const int32_t *seq_ids,
                                       int32_t num_tokens, int32_t num_q_heads,
                                       const void *queries, void *out,
                                       float scale, int32_t causal,
                                       const float *mask, int32_t mask_keys);

/** kvrt_attention_host that also accumulates per-key attention scores, the
 *  statistic H2O evicts by: for every slot j of kv head h of sequence b it
 *  adds, to key_scores[(b * num_kv_heads + h) * key_scores_stride + j], the
 *  softmax probability key j got from each query token and each query head
 *  of h's group (summed). key_scores (host memory, fp32) is accumulated
 *  into, never cleared; key_scores_stride must be at least the longest
 *  sequence of the batch. */
kvrt_status kvrt_attention_host_scored(const kvrt_cache *cache, int32_t batch,
                                       const int32_t *seq_ids,
                                       int32_t num_tokens, int32_t num_q_heads,
                                       const void *queries, void *out,
                                       float scale, int32_t causal,
                                       float *key_scores,
                                       int64_t key_scores_stride);

/** Launches a compiled attention kernel over a CUDA pool. `kernel` is a
 *  `__global__ void(kvrt_attention_params)` (see kvrt/device/params.h); kvrt
 *  fills the params with the batch's device page tables (kept on the device
 *  and updated incrementally; a batch of up to KVRT_INLINE_ROWS (sequence,
 *  kv head) rows gets its lengths and table offsets inline in the params,
 *  which the kernel must honour: inline_rows) and launches it with grid
 *  (num_kv_heads, batch * num_tokens, splits) and `threads` threads (kvcc's
 *  kernels: kvrt::device::kAttentionThreads); a decode launch of such a
 *  kernel whose __launch_bounds__ allow 512 threads runs 512-thread blocks,
 *  unsplit, where the batch has about one (sequence, kv head) row per SM.
 *  Chunks of 64+ query rows (tokens x group) of fp16/bf16 caches at
 *  head_dim 64/128 run in the prefill layout (kvrt/device/params.h,
 *  query_tile_rows): on compute capability 9.0, a kernel whose bounds
 *  allow 384 threads at 168 registers (kvcc's kernels with the prefill
 *  body, in their sm_90a code) gets 384-thread blocks of 128 rows where
 *  the rows see at least 512 keys on average (the warp-specialized body,
 *  on a persistent grid along x of at most one block per SM, each taking
 *  128-row tiles in rounds; such a kernel built for another target runs
 *  those blocks on CUDA cores), else 64-row blocks of `threads` threads.
 *  Same masking as kvrt_attention_host. A kernel compiled for another
 *  element type, head_dim, group size, page size or causality than the
 *  cache and the call (kvrt cannot see a kernel's template values; it
 *  passes the cache's in the params) refuses on the device: every output
 *  element becomes NaN, and with kvrt_attention_launch_scored every slot
 *  below each (sequence, kv head) row's length in key_scores too. `queries` and
 * `out` are device memory aligned to 16 bytes (cudaMalloc's and torch's
 * allocations are; KVRT_ERROR_INVALID_ARGUMENT otherwise): the kernels read
 * query rows as 16-byte vectors. A stream that is capturing a CUDA graph is
 * refused (KVRT_ERROR_UNSUPPORTED): each call plans its tables for the
 * batch as it is then, which a replay would reuse after it changed.
 * kvrt remembers, per device and for the life of the process, what it
 * learned about each `kernel` it was given (its launch bounds, registers,
 * occupancy and the dynamic shared memory limit it raised), keyed by the
 * kernel's address: a library of kernels unloaded (dlclose) and another
 * loaded where a remembered kernel was may get that kernel's plan: a
 * launch that fails with a CUDA error (too many threads or too much shared
 * memory for the new kernel) or a slower plan, not a wrong result (the
 * kernels check the launch they get, see above). */
kvrt_status kvrt_attention_launch(const kvrt_cache *cache, int32_t batch,
                                  const int32_t *seq_ids, int32_t num_tokens,
                                  int32_t num_q_heads, const void *queries,
                                  void *out, float scale, int32_t causal,
                                  const void *kernel, int32_t threads,
                                  void *stream);

/** kvrt_attention_launch (its rules, graph capture included) with
 *  kvrt_attention_host_scored's per-key scores,
 *  accumulated into key_scores in device memory (same layout and rule),
 *  all on `stream`. The kernel writes each visible key's probability
 *  relative to a maximum of its chunk (16 keys, or the page when pages are
 *  smaller) to a runtime workspace (per query row, the batch's longest
 *  sequence rounded up to 512: a half per key, a float for fp32 caches,
 *  and a float per chunk; kvrt/device/params.h) and a second kernel adds
 *  the normalized probabilities and then drops the workspace's lines from
 *  L2 (KVRT_SCORE_DISCARD=0 keeps them), so that those still there never
 *  reach DRAM (the tensor-core kernels store them with an L2 evict-last
 *  hint). While on, the hook costs a 2-byte (fp32: 4-byte) write per key
 *  and query head, plus 4 bytes per chunk and head; nothing while off.
 *  Halves keep 11 bits: a relative error of at most
 *  2^-11 per term, terms below 2^-14 of their maximum 2^-25 of it at most
 *  (the tensor-core kernels take each chunk's own maximum, the CUDA-core
 *  ones the page's). Always
 *  uses the one-token-per-block layout (prefill chunks run slower with
 *  it). */
kvrt_status kvrt_attention_launch_scored(
    const kvrt_cache *cache, int32_t batch, const int32_t *seq_ids,
    int32_t num_tokens, int32_t num_q_heads, const void *queries, void *out,
    float scale, int32_t causal, const void *kernel, int32_t threads,
    float *key_scores, int64_t key_scores_stride, void *stream);

/** How kvrt_attention_launch (or, with `scored`, _scored) runs a call:
 *  what kvrt_attention_plan reports. */
typedef struct kvrt_attention_plan_info {
  /** Query rows per block: 0 for the decode layout (a block per query
   *  token and kv head, all its group's heads), else the prefill layout's
   *  64 (the mma.sync or, on sm_90a, the 64-row wgmma body) or 128 (the
   *  warp-specialized body, sm_90a). */
  int32_t query_tile_rows;
  /** Parts each (sequence, kv head) row's pages are split into (decode
   *  layout), merged by a second kernel when above 1. */
  int32_t num_splits;
  /** Pages per split (the last split takes the rest); 0 when unsplit. */
  int32_t pages_per_split;
  /** Threads per block. */
  int32_t block_threads;
  /** Dynamic shared memory per block, bytes: the decode bodies' block
   *  state (9328 at head_dim 128, groups of 4) or the prefill bodies' tiles
   *  (226 KiB for the warp-specialized one at head_dim 128). The kernels
   *  declare no static shared memory. */
  int32_t shared_bytes;
  /** Blocks: x kv heads, y (sequence, token) rows or, 64-row prefill
   *  layout, (sequence, row tile) pairs, z splits; the warp-specialized
   *  prefill layout (query_tile_rows 128) takes a persistent grid instead:
   *  x blocks (one per SM, at most one per (sequence, kv head, row tile)
   *  item; KVRT_PREFILL_PERSISTENT=0: one per item), y = z = 1. Launch
   *  with this grid: the kernel refuses another shape (NaN outputs). */
  int32_t grid[3];
  /** 1 where the warp-specialized prefill body gathers K and V by sm_90's
   *  tensor copies, a page's rows at a time (the cache's tensor maps: CUDA
   *  caches of fp16 or bf16 pages on sm_90 devices; pages of at least 32
   *  tokens, head_dim a multiple of 64; KVRT_PREFILL_TMA=0 turns them
   *  off), 0 where it copies by cp.async or another body runs. */
  int32_t tensor_copies;
  /** 1 where that body copies each whole 128-key tile whose pages are
   *  consecutive in the pool (kvrt's allocator hands a fresh sequence its
   *  pages in order) as one tensor copy per 64 columns, and the other
   *  tiles as tensor_copies says: pages of 16 to 64 tokens, the same
   *  caches and devices (KVRT_PREFILL_TMA=0 or KVRT_PREFILL_TMA_RUNS=0
   *  turn it off). */
  int32_t tensor_copy_runs;
} kvrt_attention_plan_info;

/** The launch kvrt_attention_launch would make for the same arguments
 *  (kvrt_attention_launch_scored's when `scored` is non-zero) on the
 *  cache's device as the batch is now: its layout, split and block shape,
 *  into `out`; queues nothing and needs no query or output buffers. Same
 *  checks as kvrt_attention_launch otherwise, the same knobs
 *  (KVRT_DECODE_SPLITS, KVRT_DECODE_WIDE, KVRT_PREFILL_LAYOUT,
 *  KVRT_PREFILL_WS, KVRT_PREFILL_WGMMA, KVRT_PREFILL_PERSISTENT,
 *  KVRT_PREFILL_TMA), and, like the launch, it may raise
 *  `kernel`'s dynamic shared memory limit for the prefill layout. For
 *  tests, tuning and logging which body a call runs; the plan holds until
 *  the sequences' lengths change. What only the launch can find out is not
 *  checked: the stream's capture state, and with `scored` the key-score
 *  accumulation's grid limit (rows of about 67 million tokens). */
kvrt_status kvrt_attention_plan(const kvrt_cache *cache, int32_t batch,
                                const int32_t *seq_ids, int32_t num_tokens,
                                int32_t num_q_heads, int32_t causal,
                                const void *kernel, int32_t threads,
                                int32_t scored, kvrt_attention_plan_info *out);

#ifdef __cplusplus
}
#endif

#endif /* KVRT_KVRT_H */
