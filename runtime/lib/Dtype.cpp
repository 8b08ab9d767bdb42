//===- Dtype.cpp - Element type sizes and names -----------------*- C++ -*-===//
//
// kvrt_dtype_size and the names that error messages use for dtypes and
// devices. Every function here accepts out-of-range enum values.
//
//===----------------------------------------------------------------------===//
#include "Dtype.h"

size_t kvrt::elementSize(const kvrt_dtype &dtype) {
  switch (rawEnum(dtype)) {
  case KVRT_DTYPE_F16:
  case KVRT_DTYPE_BF16:
    return 2;
  case KVRT_DTYPE_F32:
    return 4;
  }
  return 0;
}

extern "C" size_t kvrt_dtype_size(kvrt_dtype dtype) {
  return kvrt::elementSize(dtype);
}

const char *kvrt::dtypeName(const kvrt_dtype &dtype) {
  switch (rawEnum(dtype)) {
  case KVRT_DTYPE_F16:
    return "f16";
  case KVRT_DTYPE_BF16:
    return "bf16";
  case KVRT_DTYPE_F32:
    return "f32";
  }
  return "unknown dtype";
}

const char *kvrt::deviceName(const kvrt_device &device) {
  switch (rawEnum(device)) {
  case KVRT_DEVICE_HOST:
    return "host";
  case KVRT_DEVICE_CUDA:
    return "cuda";
  }
  return "unknown device";
}
