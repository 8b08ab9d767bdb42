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
 *    id arrays are always host pointers.
 *  - A page holds `page_size` tokens of one kv head of one cache: first the
 *    keys [page_size, head_dim], then the values [page_size, head_dim].
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
  KVRT_ERROR_INVALID_ARGUMENT = 1, /* null handle, bad shape, bad enum     */
  KVRT_ERROR_OUT_OF_MEMORY = 2,    /* host/device allocation or no pages   */
  KVRT_ERROR_CAPACITY = 3,         /* a sequence would exceed its capacity */
  KVRT_ERROR_UNKNOWN_SEQUENCE = 4, /* id never created or already freed    */
  KVRT_ERROR_MISMATCH = 5,         /* cache differs from what was compiled */
  KVRT_ERROR_UNSUPPORTED = 6,      /* e.g. CUDA pool in a CPU-only build   */
  KVRT_ERROR_CUDA = 7              /* a CUDA runtime call failed           */
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
/** Destroys a pool and every cache created from it. Null is a no-op. */
kvrt_status kvrt_pool_destroy(kvrt_pool *pool);

typedef struct kvrt_pool_stats {
  kvrt_device device;
  int64_t page_bytes;
  int64_t pages_total;
  int64_t pages_free;
  int64_t num_sequences;
  int64_t num_caches;
} kvrt_pool_stats;
kvrt_status kvrt_pool_get_stats(const kvrt_pool *pool, kvrt_pool_stats *out);

/*--- Sequences -------------------------------------------------------------*/

/** Registers a new, empty sequence in the pool and returns its id (>= 0). */
kvrt_status kvrt_sequence_create(kvrt_pool *pool, int32_t *out_id);
/** Frees a sequence and returns its pages, in every cache, to the pool. */
kvrt_status kvrt_sequence_destroy(kvrt_pool *pool, int32_t id);

/*--- Caches ----------------------------------------------------------------*/

/** One layer's KV cache. */
typedef struct kvrt_cache_desc {
  int32_t num_kv_heads;
  int32_t head_dim;
  kvrt_dtype dtype;
  int32_t page_size; /* tokens per page; a power of two */
  int64_t capacity;  /* most tokens one sequence may hold */
} kvrt_cache_desc;

/** Bytes one page of `desc` needs: 2 * page_size * head_dim * dtype size. */
int64_t kvrt_cache_page_bytes(const kvrt_cache_desc *desc);

kvrt_status kvrt_cache_create(kvrt_pool *pool, const kvrt_cache_desc *desc,
                              kvrt_cache **out);
/** Destroys a cache and returns its pages to the pool. Null is a no-op. */
kvrt_status kvrt_cache_destroy(kvrt_cache *cache);
kvrt_status kvrt_cache_get_desc(const kvrt_cache *cache, kvrt_cache_desc *out);
/** Tokens sequence `id` holds in `cache` (0 before its first append). */
kvrt_status kvrt_cache_sequence_length(const kvrt_cache *cache, int32_t id,
                                       int64_t *out);

/** Returns KVRT_OK when `cache` matches what a compiled program expects, and
 *  KVRT_ERROR_MISMATCH naming the first differing field otherwise. A
 *  compiled entry point calls this before touching a cache. */
kvrt_status kvrt_cache_check(const kvrt_cache *cache, kvrt_device device,
                             int32_t num_kv_heads, int32_t head_dim,
                             kvrt_dtype dtype, int32_t page_size,
                             int64_t capacity);

/** Copies the keys and values a sequence holds into dense host arrays
 *  [length, kv_heads, head_dim] (either may be null). For tests and tools. */
kvrt_status kvrt_cache_read(const kvrt_cache *cache, int32_t id, void *keys,
                            void *values);

/*--- Kernels ---------------------------------------------------------------*/

/** Appends `num_tokens` new tokens to each of `batch` sequences. All pages
 *  needed by the whole batch are reserved first: either every sequence is
 *  appended or none is. Runs on the pool's device; `stream` is a
 *  cudaStream_t for CUDA pools (may be null) and ignored on the host. */
kvrt_status kvrt_append(kvrt_cache *cache, int32_t batch,
                        const int32_t *seq_ids, int32_t num_tokens,
                        const void *keys, const void *values, void *stream);

/** Reference attention on a host pool: the `num_tokens` queries of each
 *  sequence are its last `num_tokens` positions; with `causal` query i sees
 *  keys [0, length - num_tokens + i], else all keys. `num_q_heads` must be a
 *  multiple of the cache's kv heads (GQA). fp32 accumulation. */
kvrt_status kvrt_attention_host(const kvrt_cache *cache, int32_t batch,
                                const int32_t *seq_ids, int32_t num_tokens,
                                int32_t num_q_heads, const void *queries,
                                void *out, float scale, int32_t causal);

/** Launches a compiled attention kernel over a CUDA pool. `kernel` is a
 *  `__global__ void(kvrt_attention_params)` (see kvrt/device/params.h); kvrt
 *  builds the device page tables of the batch, fills the params and launches
 *  it with grid (num_kv_heads, batch * num_tokens) and `threads` threads. */
kvrt_status kvrt_attention_launch(const kvrt_cache *cache, int32_t batch,
                                  const int32_t *seq_ids, int32_t num_tokens,
                                  int32_t num_q_heads, const void *queries,
                                  void *out, float scale, int32_t causal,
                                  const void *kernel, int32_t threads,
                                  void *stream);

#ifdef __cplusplus
}
#endif

#endif /* KVRT_KVRT_H */
