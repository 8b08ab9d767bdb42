//===- GpuTestHelpers.h - Shared helpers of kvrt's GPU tests ----*- C++ -*-===//
//
// GPU tests build everywhere CUDA compiles but skip where no device runs.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_UNITTESTS_GPUTESTHELPERS_H
#define KVRT_UNITTESTS_GPUTESTHELPERS_H

#include "kvrt/kvrt.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace kvrt::test {

/// True when kvrt has CUDA and the machine has a device to run on.
inline bool haveGpu() {
  if (!kvrt_has_cuda())
    return false;
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

/// Whether device 0 has compute capability 9.0, where kvrt makes its
/// caches' tensor maps (fails the current test if it cannot tell).
inline bool deviceIsSm90() {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) !=
          cudaSuccess) {
    ADD_FAILURE() << "device 0's compute capability is unavailable";
    return false;
  }
  return major == 9 && minor == 0;
}

/// Sets environment variable `name` to `value` for its lifetime (a runtime
/// knob such as KVRT_DECODE_SPLITS); leaves it unset when `value` is null.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (value)
      setenv(name, value, 1);
  }
  ScopedEnv(const char *name, const std::string &value)
      : ScopedEnv(name, value.c_str()) {}
  ~ScopedEnv() { unsetenv(name); }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  const char *name;
};

} // namespace kvrt::test

/// Skips the current test on machines without a CUDA device.
#define SKIP_WITHOUT_GPU()                                                     \
  do {                                                                         \
    if (!::kvrt::test::haveGpu())                                              \
      GTEST_SKIP() << "no CUDA device";                                        \
  } while (false)

#endif // KVRT_UNITTESTS_GPUTESTHELPERS_H
