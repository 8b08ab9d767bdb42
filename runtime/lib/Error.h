//===- Error.h - Status reporting inside kvrt -------------------*- C++ -*-===//
//
// Every public entry point of kvrt reports failures the same way: it records a
// message for the calling thread and returns a status code. This header holds
// the helpers that do so, so that no entry point formats messages by hand or
// lets a C++ exception escape through the C API.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_ERROR_H
#define KVRT_LIB_ERROR_H

#include "kvrt/kvrt.h"

#include <exception>
#include <new>
#include <string>

namespace kvrt {

/// Records `format` (printf style) as the calling thread's last error and
/// returns `status`, so that callers can write `return fail(...)`.
kvrt_status fail(kvrt_status status, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/// Runs `body` (which returns a kvrt_status) and converts any C++ exception
/// that escapes it into a status: the C API must never unwind into C callers,
/// and allocation failures of bookkeeping containers are ordinary
/// out-of-memory conditions for the user.
template <typename Body>
kvrt_status guardCall(const char *function, Body &&body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return fail(KVRT_ERROR_OUT_OF_MEMORY,
                "%s: out of host memory for bookkeeping", function);
  } catch (const std::exception &error) {
    return fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: internal error: %s", function,
                error.what());
  } catch (...) {
    return fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: unknown internal error",
                function);
  }
}

/// Fails with KVRT_ERROR_INVALID_ARGUMENT when `pointer` is null; the
/// message names the function and the argument.
inline kvrt_status checkNotNull(const void *pointer, const char *function,
                                const char *argument) {
  if (pointer)
    return KVRT_OK;
  return fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: %s must not be null", function,
              argument);
}

/// Fails with KVRT_ERROR_INVALID_ARGUMENT when `value` is not positive.
inline kvrt_status checkPositive(long long value, const char *function,
                                 const char *argument) {
  if (value > 0)
    return KVRT_OK;
  return fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: %s must be positive, got %lld",
              function, argument, value);
}

/// For steps after which work may already be queued: returns `status`, and
/// when it failed first runs `cleanup` (a call recording that work; its own
/// failure is ignored) without losing the step's error message.
template <typename Cleanup>
kvrt_status afterQueued(kvrt_status status, Cleanup &&cleanup) {
  if (status == KVRT_OK)
    return KVRT_OK;
  const std::string message = kvrt_last_error();
  (void)cleanup();
  return fail(status, "%s", message.c_str());
}

} // namespace kvrt

/// Returns from the enclosing function when `expr` yields a failing status.
#define KVRT_RETURN_IF_ERROR(expr)                                             \
  do {                                                                         \
    kvrt_status kvrtStatus_ = (expr);                                          \
    if (kvrtStatus_ != KVRT_OK)                                                \
      return kvrtStatus_;                                                      \
  } while (false)

#endif // KVRT_LIB_ERROR_H
