//===- Dtype.h - Element types of kvrt caches -------------------*- C++ -*-===//
//
// Names, validity and host-side float conversion of kvrt_dtype elements,
// shared by the reference kernels, kvrt_cache_check messages and tests.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_DTYPE_H
#define KVRT_LIB_DTYPE_H

#include "Float16.h"
#include "kvrt/kvrt.h"

#include <cstdint>
#include <cstring>

namespace kvrt {

/// True for the dtypes kvrt knows; C callers may pass any integer.
inline bool isValidDtype(kvrt_dtype dtype) {
  return dtype == KVRT_DTYPE_F16 || dtype == KVRT_DTYPE_BF16 ||
         dtype == KVRT_DTYPE_F32;
}

/// True for the devices kvrt knows.
inline bool isValidDevice(kvrt_device device) {
  return device == KVRT_DEVICE_HOST || device == KVRT_DEVICE_CUDA;
}

/// Short name used in messages: "f16", "bf16", "f32" or "unknown".
const char *dtypeName(kvrt_dtype dtype);

/// Name used in messages: "host", "cuda" or "unknown".
const char *deviceName(kvrt_device device);

/// Reads element `index` of an array of `dtype` as float.
inline float loadAsFloat(const void *data, kvrt_dtype dtype, int64_t index) {
  switch (dtype) {
  case KVRT_DTYPE_F16: {
    uint16_t bits;
    std::memcpy(&bits, static_cast<const char *>(data) + 2 * index, 2);
    return halfToFloat(bits);
  }
  case KVRT_DTYPE_BF16: {
    uint16_t bits;
    std::memcpy(&bits, static_cast<const char *>(data) + 2 * index, 2);
    return bfloat16ToFloat(bits);
  }
  case KVRT_DTYPE_F32:
    break;
  }
  float value;
  std::memcpy(&value, static_cast<const char *>(data) + 4 * index, 4);
  return value;
}

/// Writes `value`, rounded to `dtype`, as element `index` of an array.
inline void storeFromFloat(void *data, kvrt_dtype dtype, int64_t index,
                           float value) {
  switch (dtype) {
  case KVRT_DTYPE_F16: {
    uint16_t bits = floatToHalf(value);
    std::memcpy(static_cast<char *>(data) + 2 * index, &bits, 2);
    return;
  }
  case KVRT_DTYPE_BF16: {
    uint16_t bits = floatToBFloat16(value);
    std::memcpy(static_cast<char *>(data) + 2 * index, &bits, 2);
    return;
  }
  case KVRT_DTYPE_F32:
    break;
  }
  std::memcpy(static_cast<char *>(data) + 4 * index, &value, 4);
}

} // namespace kvrt

#endif // KVRT_LIB_DTYPE_H
