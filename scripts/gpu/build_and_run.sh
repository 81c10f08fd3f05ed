#!/usr/bin/env bash
# Runs THERE, on the GPU device machine (CUDA, PyTorch's LibTorch, CMake, ninja, g++; no apt, no internet),
# in the repository root, with .deps/root.tar.xz and (for --evals) .deps/shared carried along
# (scripts/gpu/fetch_deps.sh makes both here; docs/GPU_BUILD.md).
# Usage: scripts/gpu/build_and_run.sh [--no-tests] [--labels REGEX] [--evals] [--jobs N] [--targets 'T ...']
#                                    [--sanitize] [-- COMMAND ...]
#   builds into build-gpu/, runs the core + tokenizer tests (--labels: other ctest labels, '' for none)
#   and the CUDA-backend tests (ctest -L cuda, cuda.log), optionally the standard evaluations,
#   then COMMAND (one shell line; PTQ, CUDA_REPORT, MODEL, HELDOUT, WIKITEXT are exported for it).
#   --targets: build only these (e.g. 'ptq_cuda_tests cuda_kernel_report w4a16_decode_sweep': about a third
#   of the full build).
#   --sanitize: scripts/sanitize_tests.sh's job on the machine's many cores: the core and tokenizer suites
#   under ASan + UBSan, in build-gpu-sanitize/, without the CUDA backend (nvcc takes no -fsanitize; LibTorch
#   is not instrumented either way), each test its own process under ctest.
# Logs go to $OUT (the device tool's result folder; at most 8 files come back), else out/gpu/.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
OUT=${OUT:-$REPO/out/gpu}; mkdir -p "$OUT"
DEPS=$REPO/.deps
ROOT=$DEPS/root
BUILD=$REPO/build-gpu
RUN_TESTS=1; RUN_EVALS=0; JOBS=$(nproc); EXTRA=(); LABELS='core|tokenizer'; TARGETS=''; SANITIZE=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-tests) RUN_TESTS=0 ;;
    --evals) RUN_EVALS=1 ;;
    --labels) LABELS=$2; shift ;;
    --jobs) JOBS=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    --sanitize) SANITIZE=1 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
SANITIZE_FLAGS=()
if [ $SANITIZE = 1 ]; then
  BUILD=$REPO/build-gpu-sanitize
  TARGETS=${TARGETS:-ptq_core_tests ptq_tokenizer_tests}
  export OMP_NUM_THREADS=2
  SANITIZE_FLAGS=(-DPTQ_SANITIZE=ON -DPTQ_WITH_CUDA_BACKEND=OFF -DPTQ_CHECK_CUDA_KERNELS=OFF -DPTQ_BUILD_EXAMPLES=OFF)
  source scripts/sanitizer_env.sh
fi
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/summary.log"; }

# --- environment -------------------------------------------------------------------------------
{
  uname -a; cat /etc/os-release 2>/dev/null | head -3; nproc; free -g | head -2
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  g++ --version | head -1; cmake --version | head -1; ninja --version; command -v nvcc && nvcc --version | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "abi", torch.compiled_with_cxx11_abi())'
  ldd --version | head -1; command -v pkg-config xz zstd
} > "$OUT/env.log" 2>&1
say "env: $(grep -m1 PRETTY "$OUT/env.log" | cut -d= -f2) / $(grep -m1 '^g++' "$OUT/env.log") / $(grep -m1 '^torch' "$OUT/env.log")"

# --- dependencies and data -----------------------------------------------------------------------
[ -d "$ROOT" ] || tar -C "$DEPS" -xJf "$DEPS/root.tar.xz" || { say "FAIL: cannot unpack .deps/root.tar.xz"; exit 1; }
python3 - "$DEPS/shared/data" <<'PY'
import lzma, os, sys, glob
d = sys.argv[1]
for xz in glob.glob(os.path.join(d, '*', '*.txt.xz')):
    if not os.path.exists(xz[:-3]):
        open(xz[:-3], 'wb').write(lzma.open(xz).read())
m = os.path.join(d, 'models', 'ptq-small-32m', 'model')
if os.path.exists(m + '.hi.xz') and not os.path.exists(m + '.safetensors'):
    lo = open(m + '.lo', 'rb').read(); hi = lzma.open(m + '.hi.xz').read()
    body = bytearray(2 * len(lo)); body[0::2] = lo; body[1::2] = hi
    open(m + '.safetensors', 'wb').write(open(m + '.hdr', 'rb').read() + bytes(body))
PY
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig:$ROOT/usr/share/pkgconfig
PKGCONF=$ROOT/usr/bin/pkgconf
"$PKGCONF" --version >/dev/null 2>&1 || PKGCONF=$(command -v pkg-config || true)
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
GTEST_DIR=$LIBDIR/cmake/GTest
# Debian 12's libgtest.a needs libstdc++ >= GCC 12's; with an older g++ build GoogleTest from its sources.
if [ "$(g++ -dumpversion | cut -d. -f1)" -lt 12 ] && [ ! -d "$DEPS/gtest-install" ]; then
  say "g++ < 12: building GoogleTest from the carried sources"
  cmake -S "$ROOT/usr/src/googletest" -B "$DEPS/gtest-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$DEPS/gtest-install" -DCMAKE_POSITION_INDEPENDENT_CODE=ON >> "$OUT/build.log" 2>&1 &&
    cmake --build "$DEPS/gtest-build" --target install >> "$OUT/build.log" 2>&1
fi
[ -d "$DEPS/gtest-install" ] && GTEST_DIR=$(dirname "$(find "$DEPS/gtest-install" -name GTestConfig.cmake | head -1)")

# --- configure and build -------------------------------------------------------------------------
say "configure"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX;$ROOT/usr" \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 \
  -DPKG_CONFIG_EXECUTABLE="$PKGCONF" \
  -Dfmt_DIR="$LIBDIR/cmake/fmt" -DGTest_DIR="$GTEST_DIR" -DBoost_DIR="$LIBDIR/cmake/Boost-1.74.0" \
  -Dboost_headers_DIR="$LIBDIR/cmake/boost_headers-1.74.0" \
  -Dnlohmann_json_DIR="$ROOT/usr/share/cmake/nlohmann_json" -DCLI11_DIR="$ROOT/usr/share/cmake/CLI11" \
  -DPTQ_SHARED_DIR="$DEPS/shared" -DPTQ_BUILD_BENCHMARKS=OFF "${SANITIZE_FLAGS[@]}" > "$OUT/build.log" 2>&1 \
  || { say "FAIL: configure (build.log)"; tail -40 "$OUT/build.log"; exit 1; }
say "build -j$JOBS ${TARGETS:-all}"
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$JOBS" ${TARGETS:+--target $TARGETS} -- -k 0 >> "$OUT/build.log" 2>&1
BUILD_RC=$?
say "build rc=$BUILD_RC, $(grep -c 'error:' "$OUT/build.log") error lines"
if [ $BUILD_RC -ne 0 ]; then grep -m 30 -A3 'error:' "$OUT/build.log"; fi

# --- tests ---------------------------------------------------------------------------------------
if [ $RUN_TESTS = 1 ] && [ -n "$LABELS" ] && [ -e "$BUILD/tests/ptq_core_tests" ]; then
  # Tests that need ../shared skip only when the whole folder is absent; the carried .deps/shared holds
  # just the evaluation model and texts (no tokenizers/, no stories260K), so hide it unless it is complete.
  SHARED_FOR_TESTS=$DEPS/shared
  [ -d "$DEPS/shared/data/tokenizers" ] || SHARED_FOR_TESTS=$DEPS/no-shared
  say "ctest -L '$LABELS' (PTQ_SHARED_DIR=$SHARED_FOR_TESTS$([ $SANITIZE = 1 ] && echo ", ASan + UBSan"))"
  # Under ASan a test runs 2-5x slower; OMP_NUM_THREADS=2 keeps -j$JOBS processes from oversubscribing the cores.
  PTQ_SHARED_DIR=$SHARED_FOR_TESTS ctest --test-dir "$BUILD" -L "$LABELS" -j"$JOBS" --timeout $((SANITIZE ? 900 : 300)) \
    --output-on-failure > "$OUT/ctest.log" 2>&1
  say "ctest rc=$? : $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1)"
  grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess|Exception|Not Run)' "$OUT/ctest.log" | head -40 | tee -a "$OUT/summary.log"
fi

# The CUDA backend against the reference on the GPU (one GPU: run serially).
if [ $RUN_TESTS = 1 ] && [ -e "$BUILD/tests/ptq_cuda_tests" ]; then
  say "ctest -L cuda"
  ctest --test-dir "$BUILD" -L cuda --timeout 300 --output-on-failure > "$OUT/cuda.log" 2>&1
  say "ctest cuda rc=$? : $(grep -E 'tests passed|tests failed' "$OUT/cuda.log" | tail -1)"
  grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess|Exception|Not Run)' "$OUT/cuda.log" | head -20 | tee -a "$OUT/summary.log"
fi

# --- evaluations ---------------------------------------------------------------------------------
export PTQ=$BUILD/tools/ptq
export CUDA_REPORT=$BUILD/bench/cuda_kernel_report
export CUDA_SWEEP=$BUILD/bench/w4a16_decode_sweep
export MODEL=$DEPS/shared/data/models/ptq-small-32m
export HELDOUT=$DEPS/shared/data/heldout/gutenberg_heldout.txt
export WIKITEXT=$DEPS/shared/data/wikitext2/test.txt
ev() {  # ev NAME ARGS...: one ptq run, JSON + stderr into evals.log, its perplexity into summary.log
  local name=$1; shift
  echo "=== $name: ptq $*" >> "$OUT/evals.log"
  local s=$(date +%s)
  timeout 240 "$PTQ" "$@" > "$OUT/.cur.json" 2>> "$OUT/evals.log"
  local rc=$?
  cat "$OUT/.cur.json" >> "$OUT/evals.log"
  local ppl=$(python3 -c 'import json,sys
def f(o):
    if isinstance(o,dict):
        for k,v in o.items():
            if k in ("ppl","perplexity") and isinstance(v,(int,float)): return v
            r=f(v)
            if r is not None: return r
    return None
try: print(f(json.load(open(sys.argv[1]))))
except Exception as e: print("n/a")' "$OUT/.cur.json")
  say "$name rc=$rc ppl=$ppl ($(( $(date +%s) - s ))s)"
  rm -f "$OUT/.cur.json"
}
if [ $RUN_EVALS = 1 ] && [ -x "$PTQ" ] && [ -e "$MODEL/model.safetensors" ]; then
  for d in heldout wikitext; do
    data=$HELDOUT; [ $d = wikitext ] && data=$WIKITEXT
    for w in 256 512; do
      ev "eval fp32 cuda $d w$w" eval --model "$MODEL" --data "$data" --window $w --batch 16 --json --device cuda
    done
  done
  ev "eval fp32 cpu heldout w512 first 16 windows" eval --model "$MODEL" --data "$HELDOUT" --window 512 --batch 16 --max-windows 16 --json
  ev "eval fp32 cuda heldout w512 first 16 windows" eval --model "$MODEL" --data "$HELDOUT" --window 512 --batch 16 --max-windows 16 --json --device cuda
  for c in w8a16_rtn w4a16_rtn_g128 w4a16_rtn_g128_sym; do
    q=/tmp/ptq_q_$c; rm -rf "$q"
    ev "quantize $c (cuda)" quantize --model "$MODEL" --config "configs/$c.json" --out "$q" --json --device cuda
    ev "eval $c cuda heldout w512" eval --model "$q" --data "$HELDOUT" --window 512 --batch 16 --json --device cuda
    say "size $c: $(du -cb "$q"/*.safetensors 2>/dev/null | tail -1 | cut -f1) bytes in $(ls "$q"/*.safetensors 2>/dev/null | wc -l) safetensors"
  done
fi

if [ ${#EXTRA[@]} -gt 0 ]; then
  say "extra: ${EXTRA[*]}"
  bash -c "${EXTRA[*]}" > "$OUT/extra.log" 2>&1
  say "extra rc=$?"
fi
say "done"
