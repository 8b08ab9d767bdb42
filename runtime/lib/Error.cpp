//===- Error.cpp - Thread-local last error and status names -----*- C++ -*-===//
//
// The message of the last failure lives in thread-local storage so that
// threads using different pools never see each other's errors.
//
//===----------------------------------------------------------------------===//
#include "Error.h"

#include <cstdarg>
#include <cstdio>
#include <string>

namespace {
/// The calling thread's last failure message; empty until a call fails.
thread_local std::string lastError;
} // namespace

kvrt_status kvrt::fail(kvrt_status status, const char *format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  // Assigning may throw bad_alloc; keeping a possibly stale message is better
  // than terminating, and the status still tells the caller what happened.
  try {
    lastError = buffer;
  } catch (...) {
  }
  return status;
}

extern "C" const char *kvrt_last_error(void) { return lastError.c_str(); }

extern "C" const char *kvrt_status_name(kvrt_status status) {
  switch (status) {
  case KVRT_OK:
    return "KVRT_OK";
  case KVRT_ERROR_INVALID_ARGUMENT:
    return "KVRT_ERROR_INVALID_ARGUMENT";
  case KVRT_ERROR_OUT_OF_MEMORY:
    return "KVRT_ERROR_OUT_OF_MEMORY";
  case KVRT_ERROR_CAPACITY:
    return "KVRT_ERROR_CAPACITY";
  case KVRT_ERROR_UNKNOWN_SEQUENCE:
    return "KVRT_ERROR_UNKNOWN_SEQUENCE";
  case KVRT_ERROR_MISMATCH:
    return "KVRT_ERROR_MISMATCH";
  case KVRT_ERROR_UNSUPPORTED:
    return "KVRT_ERROR_UNSUPPORTED";
  case KVRT_ERROR_CUDA:
    return "KVRT_ERROR_CUDA";
  case KVRT_ERROR_INVALID_HANDLE:
    return "KVRT_ERROR_INVALID_HANDLE";
  case KVRT_ERROR_OUT_OF_RANGE:
    return "KVRT_ERROR_OUT_OF_RANGE";
  }
  return "KVRT_ERROR_UNKNOWN_STATUS";
}
