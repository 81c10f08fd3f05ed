#!/usr/bin/env bash
# Installs the dependencies, builds ptq with its tests, and runs the whole test suite with ctest.
# Tests that need ../shared (real models and data) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR="${PTQ_BUILD_DIR:-build}"
# PTQ_SANITIZE_READERS: the file readers, the tokenizer suite and the fuzzing run also run under
# ASan + UBSan (ctest -L sanitize; a few minutes of build, docs/ROBUSTNESS.md).
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPTQ_BUILD_TESTS=ON -DPTQ_SANITIZE_READERS=ON
cmake --build "$BUILD_DIR" -j2
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "$@"
