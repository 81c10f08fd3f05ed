#!/usr/bin/env bash
# The main job on the bundled demo model (examples/demo-model): build ptq, quantize the model to W4A16
# (round to nearest, groups of 128), print float vs quantized perplexity and size side by side, and
# generate text with the quantized checkpoint. Uses ../shared's held-out Gutenberg text when present,
# else a short text that ships with the demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR="${PTQ_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j2 --target ptq
PTQ="$BUILD_DIR/tools/ptq"
MODEL=examples/demo-model
CONFIG="${PTQ_DEMO_CONFIG:-configs/w4a16_rtn_g128.json}"
OUT="${PTQ_DEMO_OUT:-out/demo-model-w4a16}"
DATA=../shared/data/heldout/gutenberg_heldout.txt
[ -f "$DATA" ] || DATA="$MODEL/sample_text.txt"

echo "== model =="
"$PTQ" inspect "$MODEL"
echo; echo "== quantize ($CONFIG) and compare perplexity on $DATA =="
"$PTQ" quantize --model "$MODEL" --config "$CONFIG" --out "$OUT" --eval-data "$DATA" --window 256 --max-windows 400
# Each generation must continue its prompt: an empty continuation (a load that silently gave a broken
# network, an immediate end-of-text) fails the job instead of passing unnoticed.
generate() {
  local prompt="$1"; shift
  local text
  text=$("$PTQ" generate --model "$OUT" --prompt "$prompt" "$@")
  printf '%s\n' "$text"
  local continuation="${text#"$prompt"}"
  if [ -z "${continuation//[[:space:]]/}" ]; then
    echo "run_demo.sh: the quantized checkpoint generated no text after \"$prompt\"" >&2
    exit 1
  fi
}
echo; echo "== generation with the quantized checkpoint (greedy) =="
generate "It was a dark and stormy night, and" -n 48
echo; echo "== generation (sampled, temperature 0.8, top-p 0.95) =="
generate "The old man looked at the sea" -n 48 -t 0.8 --top-p 0.95 --seed 1
