//===- ErrorTest.cpp - kvrt's error helpers ---------------------*- C++ -*-===//
//
// afterQueued (runtime/lib/Error.h): after a failed step whose work may
// already be queued, the cleanup that records the work runs, and the
// caller still sees the step's status and message, not the cleanup's.
//
//===----------------------------------------------------------------------===//
#include "Error.h"

#include <gtest/gtest.h>

namespace {

TEST(ErrorTest, AfterQueuedKeepsTheFailedStepsError) {
  int cleanups = 0;
  const kvrt_status status =
      kvrt::fail(KVRT_ERROR_CUDA, "step: the merge launch failed");
  EXPECT_EQ(kvrt::afterQueued(status,
                              [&] {
                                ++cleanups;
                                return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                                                  "cleanup failed too");
                              }),
            KVRT_ERROR_CUDA);
  EXPECT_EQ(cleanups, 1);
  EXPECT_STREQ(kvrt_last_error(), "step: the merge launch failed");
}

TEST(ErrorTest, AfterQueuedDoesNothingAfterSuccess) {
  int cleanups = 0;
  kvrt::fail(KVRT_ERROR_CUDA, "an earlier call's message");
  EXPECT_EQ(kvrt::afterQueued(KVRT_OK,
                              [&] {
                                ++cleanups;
                                return KVRT_OK;
                              }),
            KVRT_OK);
  EXPECT_EQ(cleanups, 0);
  EXPECT_STREQ(kvrt_last_error(), "an earlier call's message");
}

} // namespace
