#===- RunTest.cmake - Run a command, check its exit status and output ------===#
#
#   cmake -DEXPECT_RC=N -DEXPECT_REGEX=RE -P RunTest.cmake -- COMMAND ARGS...
#
# CTest's PASS_REGULAR_EXPRESSION ignores the exit status, but kvcc-run's
# status says what kind of failure happened (1: a check failed, 2: a bad
# manifest or usage), so the tests check both.
#
#===------------------------------------------------------------------------===#

set(command)
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(seen_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(seen_separator TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "RunTest.cmake: no command after '--'")
endif()

execute_process(COMMAND ${command}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
message("${out}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "exit status ${rc}, expected ${EXPECT_RC}")
endif()
if(NOT out MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "output does not match: ${EXPECT_REGEX}")
endif()
