# ptq_add_gtest_suites(TARGET [PREFIX p] [LABELS l...] [ENVIRONMENT VAR=value...] [TIMEOUT s]): one ctest
# test per GoogleTest *suite* of TARGET, run as `TARGET --gtest_filter=Suite.*`.
#
# Why not gtest_discover_tests (one test per TEST): every test is then a process of its own, and a
# process that loads LibTorch costs ~0.8 s before the first assertion (~2.5 s under AddressSanitizer).
# With ~420 tests that start-up was half of CI's test time; a suite per process keeps ctest's labels,
# filters and parallelism and gtest's per-test report in the output. The suites are listed after each
# build by running TARGET --gtest_list_tests (cmake/PtqListGtestSuites.cmake), as gtest_discover_tests does.
function(ptq_add_gtest_suites target)
  cmake_parse_arguments(ARG "" "PREFIX;TIMEOUT" "LABELS;ENVIRONMENT" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 1500)
  endif()
  set(ctest_file "${CMAKE_CURRENT_BINARY_DIR}/${target}_suites.cmake")
  # Lists travel through -D with "|" for ";" (a ";" would end the argument's list there).
  string(REPLACE ";" "|" labels "${ARG_LABELS}")
  string(REPLACE ";" "|" environment "${ARG_ENVIRONMENT}")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND}
      -D "TEST_EXECUTABLE=$<TARGET_FILE:${target}>"
      -D "CTEST_FILE=${ctest_file}"
      -D "PREFIX=${ARG_PREFIX}"
      -D "LABELS=${labels}"
      -D "ENVIRONMENT=${environment}"
      -D "TIMEOUT=${ARG_TIMEOUT}"
      -P "${PROJECT_SOURCE_DIR}/cmake/PtqListGtestSuites.cmake"
    BYPRODUCTS ${ctest_file}
    VERBATIM)
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${ctest_file})
endfunction()
