//===- PageFormat.cpp - Cache descriptors and page layouts ------*- C++ -*-===//
//
// Unquantized pages keep the layout compiled kernels read (keys
// [page_size, head_dim] immediately followed by values). Quantized pages
// have four regions, each [page_size, row bytes] and 16-byte aligned so
// kernels can use vector loads on every region: key codes, value codes, key
// scale/zero pairs, value scale/zero pairs. Every region is token-major, so
// moving one token (eviction, selection) moves one row of each region.
//
//===----------------------------------------------------------------------===//
#include "PageFormat.h"
#include "Dtype.h"
#include "Error.h"

#include <initializer_list>
#include <limits>

namespace {

/// Region alignment of quantized pages.
constexpr unsigned __int128 kRegionAlignment = 16;

unsigned __int128 alignUp(unsigned __int128 value) {
  return (value + kRegionAlignment - 1) / kRegionAlignment * kRegionAlignment;
}

/// Fails unless `bits` is a supported code width (0 = unquantized).
kvrt_status checkBits(int32_t bits, const char *function, const char *field) {
  if (bits == 0 || bits == 2 || bits == 4 || bits == 8)
    return KVRT_OK;
  return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                    "%s: format->%s %d is not 0 (unquantized), 2, 4 or 8",
                    function, field, bits);
}

} // namespace

kvrt_status kvrt::validateDesc(const kvrt_cache_desc &desc, const char *fn) {
  KVRT_RETURN_IF_ERROR(
      checkPositive(desc.num_kv_heads, fn, "desc->num_kv_heads"));
  KVRT_RETURN_IF_ERROR(checkPositive(desc.head_dim, fn, "desc->head_dim"));
  if (!isValidDtype(desc.dtype))
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: desc->dtype %d is not a kvrt_dtype (0 = f16, 1 = bf16, 2 "
                "= f32)",
                fn, rawEnum(desc.dtype));
  KVRT_RETURN_IF_ERROR(checkPositive(desc.page_size, fn, "desc->page_size"));
  if ((desc.page_size & (desc.page_size - 1)) != 0)
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: desc->page_size %d is not a power of two", fn,
                desc.page_size);
  KVRT_RETURN_IF_ERROR(checkPositive(desc.capacity, fn, "desc->capacity"));
  // Kernels receive lengths as int32 (kvrt_attention_params::kv_lens).
  if (desc.capacity > std::numeric_limits<int32_t>::max())
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: desc->capacity %lld exceeds %d (kernels use 32-bit "
                "lengths)",
                fn, static_cast<long long>(desc.capacity),
                std::numeric_limits<int32_t>::max());
  if (kvrt_cache_page_bytes(&desc) == 0)
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: a page of %d tokens x %d dims overflows 64 bits", fn,
                desc.page_size, desc.head_dim);
  return KVRT_OK;
}

kvrt_status kvrt::computeLayout(const kvrt_cache_desc &desc,
                                const kvrt_page_format *format,
                                kvrt_page_layout &out, const char *fn) {
  const unsigned __int128 pageSize = static_cast<unsigned>(desc.page_size);
  const unsigned __int128 dim = static_cast<unsigned>(desc.head_dim);
  const unsigned __int128 plainRow = dim * elementSize(desc.dtype);
  kvrt_page_layout layout{};
  if (!format || (format->key_bits == 0 && format->value_bits == 0)) {
    // validateDesc guarantees these fit in int64.
    layout.key_row_bytes = static_cast<int64_t>(plainRow);
    layout.value_row_bytes = static_cast<int64_t>(plainRow);
    layout.value_offset = static_cast<int64_t>(pageSize * plainRow);
    layout.page_bytes = 2 * layout.value_offset;
    layout.token_bytes = 2 * layout.key_row_bytes;
    out = layout;
    return KVRT_OK;
  }

  KVRT_RETURN_IF_ERROR(checkBits(format->key_bits, fn, "key_bits"));
  KVRT_RETURN_IF_ERROR(checkBits(format->value_bits, fn, "value_bits"));
  KVRT_RETURN_IF_ERROR(
      checkPositive(format->group_size, fn, "format->group_size"));
  if (desc.head_dim % format->group_size != 0)
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: format->group_size %d does not divide head_dim %d", fn,
                format->group_size, desc.head_dim);
  for (int32_t bits : {format->key_bits, format->value_bits})
    if (static_cast<int64_t>(format->group_size) * bits % 8 != 0)
      return fail(KVRT_ERROR_INVALID_ARGUMENT,
                  "%s: a group of %d elements of %d bits is not a whole "
                  "number of bytes",
                  fn, format->group_size, bits);
  if (!isValidDtype(format->scale_dtype))
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: format->scale_dtype %d is not a kvrt_dtype", fn,
                rawEnum(format->scale_dtype));

  const unsigned __int128 groups =
      dim / static_cast<unsigned>(format->group_size);
  const unsigned __int128 metaRow =
      groups * 2 * elementSize(format->scale_dtype);
  auto codeRow = [&](int32_t bits) {
    return bits == 0 ? plainRow : dim * static_cast<unsigned>(bits) / 8;
  };
  const unsigned __int128 keyRow = codeRow(format->key_bits);
  const unsigned __int128 valueRow = codeRow(format->value_bits);
  const unsigned __int128 keyMetaRow = format->key_bits ? metaRow : 0;
  const unsigned __int128 valueMetaRow = format->value_bits ? metaRow : 0;

  const unsigned __int128 valueOffset = alignUp(pageSize * keyRow);
  const unsigned __int128 keyMetaOffset =
      alignUp(valueOffset + pageSize * valueRow);
  const unsigned __int128 valueMetaOffset =
      alignUp(keyMetaOffset + pageSize * keyMetaRow);
  const unsigned __int128 pageBytes =
      alignUp(valueMetaOffset + pageSize * valueMetaRow);
  if (pageBytes >
      static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()))
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: a page of %d tokens x %d dims overflows 64 bits", fn,
                desc.page_size, desc.head_dim);
  layout.page_bytes = static_cast<int64_t>(pageBytes);
  layout.key_row_bytes = static_cast<int64_t>(keyRow);
  layout.value_offset = static_cast<int64_t>(valueOffset);
  layout.value_row_bytes = static_cast<int64_t>(valueRow);
  layout.key_meta_offset = static_cast<int64_t>(keyMetaOffset);
  layout.key_meta_row_bytes = static_cast<int64_t>(keyMetaRow);
  layout.value_meta_offset = static_cast<int64_t>(valueMetaOffset);
  layout.value_meta_row_bytes = static_cast<int64_t>(valueMetaRow);
  layout.token_bytes = layout.key_row_bytes + layout.value_row_bytes +
                       layout.key_meta_row_bytes + layout.value_meta_row_bytes;
  out = layout;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_page_layout_compute(const kvrt_cache_desc *desc,
                                                const kvrt_page_format *format,
                                                kvrt_page_layout *out) {
  const char *fn = "kvrt_page_layout_compute";
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(desc, fn, "desc"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  KVRT_RETURN_IF_ERROR(kvrt::validateDesc(*desc, fn));
  return kvrt::computeLayout(*desc, format, *out, fn);
}
