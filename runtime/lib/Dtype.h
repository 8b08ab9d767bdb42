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

/// The integer a caller stored in an enum parameter or field. C callers
/// (and ctypes) may pass any int, but reading a C++ enum object whose value
/// lies outside its enumerators is undefined behaviour (UBSan flags it), so
/// kvrt inspects user-provided enums through their bytes. Takes a reference:
/// passing the enum by value would already read it.
template <typename Enum> int32_t rawEnum(const Enum &value) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "C enums are int-sized");
  int32_t raw;
  std::memcpy(&raw, &value, sizeof(raw));
  return raw;
}

/// True for the dtypes kvrt knows.
inline bool isValidDtype(const kvrt_dtype &dtype) {
  int32_t raw = rawEnum(dtype);
  return raw == KVRT_DTYPE_F16 || raw == KVRT_DTYPE_BF16 ||
         raw == KVRT_DTYPE_F32;
}

/// True for the devices kvrt knows.
inline bool isValidDevice(const kvrt_device &device) {
  int32_t raw = rawEnum(device);
  return raw == KVRT_DEVICE_HOST || raw == KVRT_DEVICE_CUDA;
}

/// Bytes per element of `dtype`, 0 for an unknown dtype.
size_t elementSize(const kvrt_dtype &dtype);

/// Short name used in messages: "f16", "bf16", "f32" or "unknown dtype".
const char *dtypeName(const kvrt_dtype &dtype);

/// Name used in messages: "host", "cuda" or "unknown device".
const char *deviceName(const kvrt_device &device);

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
