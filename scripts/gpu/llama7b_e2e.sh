#!/usr/bin/env bash
# Runs THERE (after scripts/gpu/build_and_run.sh built build-gpu/): the issue-7 end-to-end check on a
# Llama-2-7B-shaped model with random weights: write it (fp16 HF folder), quantize it on the GPU with each
# CONFIG (wall time of each step, and ptq's own stage timings in its JSON), then `ptq bench --compare` batch-1
# decode of the float model against every quantized folder in one run.
#   scripts/gpu/llama7b_e2e.sh CONFIG...        e.g. configs/w4a16_rtn_g128.json
# Environment: WORK (default /tmp/llama7b; about 13.5 GB for the fp16 model plus ~4 GB per W4A16 folder),
# DEADLINE (seconds since the epoch: steps that would start after it are skipped, so one device call ends
# in time), BENCH_ARGS (default "--prompt-tokens 128 --decode-tokens 64 --repeats 2").
# Logs to $OUT/e2e.log (one line per step with its seconds) and $OUT/e2e.log.out (the commands' output).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
PTQ=${PTQ:-build-gpu/tools/ptq}
WORK=${WORK:-/tmp/llama7b}
DEADLINE=${DEADLINE:-0}
CALIB=${PTQ_EVAL_SHARED:-.deps/shared}/data/corpus/train_00.txt
LOG=$OUT/e2e.log
mkdir -p "$WORK"
step() {  # step NAME LIMIT_S CMD...: runs CMD under `timeout`, logs its wall seconds and exit status
  local name=$1 limit=$2; shift 2
  if [ "$DEADLINE" -gt 0 ] && [ $(( $(date +%s) + 10 )) -gt "$DEADLINE" ]; then
    echo "$name: skipped (deadline)" | tee -a "$LOG"; return 1
  fi
  [ "$DEADLINE" -gt 0 ] && [ $(( DEADLINE - $(date +%s) )) -lt "$limit" ] && limit=$(( DEADLINE - $(date +%s) ))
  local t0; t0=$(date +%s%N)
  echo "== $name: $*" >> "$LOG.out"
  timeout "$limit" "$@" >> "$LOG.out" 2>&1
  local rc=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$name: rc=$rc $((ms / 1000)).$(( (ms % 1000) / 100 )) s" | tee -a "$LOG"
  return $rc
}
FLOAT=$WORK/float16
[ -f "$FLOAT/config.json" ] || step make-random-model 240 "$PTQ" make-random-model --preset llama2-7b --dtype float16 --out "$FLOAT"
du -sh "$FLOAT" >> "$LOG" 2>&1
df -h "$WORK" | tail -1 >> "$LOG"
folders=()
for cfg in "$@"; do
  name=$(basename "$cfg" .json)
  calib=(--calib "$CALIB")
  case $name in *rtn*) calib=() ;; esac  # RTN needs no calibration text
  [ -f "$WORK/$name/config.json" ] || step "quantize $name" 560 "$PTQ" quantize -m "$FLOAT" -c "$cfg" -o "$WORK/$name" \
    --device cuda --dtype float16 "${calib[@]}" --json
  [ -f "$WORK/$name/config.json" ] && folders+=("$WORK/$name")
done
step "bench" 300 "$PTQ" bench -m "$FLOAT" ${folders[@]:+--compare "${folders[@]}"} --device cuda --dtype float16 \
  ${BENCH_ARGS:---prompt-tokens 128 --decode-tokens 64 --repeats 2}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >> "$LOG" 2>&1
