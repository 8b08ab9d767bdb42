//===- PageFormat.h - Cache descriptors and page layouts --------*- C++ -*-===//
//
// The rules a cache descriptor and a page format must obey, and the byte
// layout of a page that follows from them. kvrt_cache_create,
// kvrt_cache_create_with_config and kvrt_page_layout_compute share them so
// their messages agree.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_PAGEFORMAT_H
#define KVRT_LIB_PAGEFORMAT_H

#include "kvrt/kvrt.h"

namespace kvrt {

/// Checks every field of a descriptor; messages name the field and the rule.
kvrt_status validateDesc(const kvrt_cache_desc &desc, const char *function);

/// Checks `format` (null: unquantized) against a valid `desc` and computes
/// the page layout.
kvrt_status computeLayout(const kvrt_cache_desc &desc,
                          const kvrt_page_format *format, kvrt_page_layout &out,
                          const char *function);

/// True when the layout stores K or V quantized (it has scale/zero rows).
inline bool isQuantized(const kvrt_page_layout &layout) {
  return layout.key_meta_row_bytes != 0 || layout.value_meta_row_bytes != 0;
}

} // namespace kvrt

#endif // KVRT_LIB_PAGEFORMAT_H
