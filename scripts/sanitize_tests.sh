#!/usr/bin/env bash
# Builds the test suites with AddressSanitizer + UndefinedBehaviorSanitizer (the PTQ_SANITIZE CMake
# option) in a separate build folder and runs them: the tokenizer suite whole, and the core suite
# (all of it by default; PTQ_SANITIZE_FILTER narrows it, e.g. 'FuzzInputs.*:Safetensors*').
# LibTorch itself is not instrumented; our code and everything it does with the memory it gets from
# LibTorch is. docs/ROBUSTNESS.md has the measured times.
#
#   bash scripts/sanitize_tests.sh              # build + run, prints the time of each step
#   PTQ_SANITIZE_BUILD_DIR=/tmp/b PTQ_JOBS=4 bash scripts/sanitize_tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${PTQ_SANITIZE_BUILD_DIR:-build-sanitize}"
JOBS="${PTQ_JOBS:-2}"
FILTER="${PTQ_SANITIZE_FILTER:-*}"

source scripts/sanitizer_env.sh
export PTQ_BUILD_DIR="$PWD/$BUILD_DIR"

t0=$(date +%s)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPTQ_SANITIZE=ON \
  -DPTQ_BUILD_TESTS=ON -DPTQ_BUILD_EXAMPLES=OFF -DPTQ_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target ptq_tokenizer_tests ptq_core_tests
t1=$(date +%s)
echo "sanitize_tests.sh: build took $((t1 - t0)) s"

"$BUILD_DIR/tests/ptq_tokenizer_tests"
t2=$(date +%s)
echo "sanitize_tests.sh: tokenizer suite took $((t2 - t1)) s"

"$BUILD_DIR/tests/ptq_core_tests" --gtest_filter="$FILTER"
t3=$(date +%s)
echo "sanitize_tests.sh: core suite (filter '$FILTER') took $((t3 - t2)) s"
echo "sanitize_tests.sh: total $((t3 - t0)) s"
