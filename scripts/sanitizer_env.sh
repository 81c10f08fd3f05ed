# Sourced by scripts/sanitize_tests.sh and scripts/gpu/build_and_run.sh --sanitize: how the ASan + UBSan
# test runs behave (tests/sanitize/CMakeLists.txt sets the same for CI's ctest -L sanitize).
# detect_leaks=0: LibTorch and OpenMP keep allocations alive until exit by design.
# halt_on_error: the first UBSan report fails the run instead of scrolling by.
# protect_shadow_gap=0: a LibTorch built with CUDA maps the driver's memory where ASan's shadow gap would be.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0:protect_shadow_gap=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_WAIT_POLICY=PASSIVE
