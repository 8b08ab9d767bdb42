//===- Dtype.cpp - Element type sizes and names -----------------*- C++ -*-===//
//
// kvrt_dtype_size and the names that error messages use for dtypes and
// devices.
//
//===----------------------------------------------------------------------===//
#include "Dtype.h"

extern "C" size_t kvrt_dtype_size(kvrt_dtype dtype) {
  switch (dtype) {
  case KVRT_DTYPE_F16:
  case KVRT_DTYPE_BF16:
    return 2;
  case KVRT_DTYPE_F32:
    return 4;
  }
  return 0;
}

const char *kvrt::dtypeName(kvrt_dtype dtype) {
  switch (dtype) {
  case KVRT_DTYPE_F16:
    return "f16";
  case KVRT_DTYPE_BF16:
    return "bf16";
  case KVRT_DTYPE_F32:
    return "f32";
  }
  return "unknown";
}

const char *kvrt::deviceName(kvrt_device device) {
  switch (device) {
  case KVRT_DEVICE_HOST:
    return "host";
  case KVRT_DEVICE_CUDA:
    return "cuda";
  }
  return "unknown";
}
