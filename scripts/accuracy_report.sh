#!/usr/bin/env bash
# Float vs quantized perplexity and checkpoint size of a model for several recipes, as a Markdown table
# (the tables in docs/ACCURACY.md). Each recipe is quantized with `ptq quantize`, then the saved folder is
# evaluated with `ptq eval` (so the numbers also exercise load_quantized).
#   scripts/accuracy_report.sh [--model DIR] [--data FILE] [--window N] [--max-windows N] CONFIG...
# Defaults: ../shared's ptq-small-32m, heldout/gutenberg_heldout.txt, window 512, every window.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${PTQ_SHARED_DIR:-../shared}/data"
MODEL="$SHARED/models/ptq-small-32m"
DATA="$SHARED/heldout/gutenberg_heldout.txt"
WINDOW=512
MAX_WINDOWS=0
PTQ="${PTQ_BUILD_DIR:-build}/tools/ptq"
OUT_ROOT="${PTQ_ACCURACY_OUT:-out/accuracy}"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --window) WINDOW="$2"; shift 2 ;;
    --max-windows) MAX_WINDOWS="$2"; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--model DIR] [--data FILE] [--window N] [--max-windows N] CONFIG..." >&2; exit 2; }

eval_json() { "$PTQ" ${PTQ_THREADS:+--threads "$PTQ_THREADS"} --quiet eval --model "$1" --data "$DATA" --window "$WINDOW" --max-windows "$MAX_WINDOWS" --batch 4 --json; }
weights_bytes() { du -cb "$1"/*.safetensors | tail -1 | cut -f1; }

float_ppl=$(eval_json "$MODEL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
echo "model: $MODEL, data: $(basename "$DATA"), window $WINDOW, max windows $MAX_WINDOWS (0 = all)"
echo
echo "| recipe | weights on disk | perplexity | change vs float |"
echo "|---|---|---|---|"
python3 -c "import sys; print(f'| float ({sys.argv[1]}) | {int(sys.argv[2])/1048576:.2f} MiB | {float(sys.argv[3]):.4f} | |')" \
  "$(basename "$MODEL")" "$(weights_bytes "$MODEL")" "$float_ppl"
for config in "$@"; do
  out="$OUT_ROOT/$(basename "$MODEL")-$(basename "${config%.*}")"
  "$PTQ" ${PTQ_THREADS:+--threads "$PTQ_THREADS"} --quiet quantize --model "$MODEL" --config "$config" --out "$out" --json > /dev/null
  ppl=$(eval_json "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')
  python3 -c "import sys; b=int(sys.argv[2]); f=float(sys.argv[3]); q=float(sys.argv[4]);
print(f'| {sys.argv[1]} | {b/1048576:.2f} MiB | {q:.4f} | {100*(q/f-1):+.3f}% |')" \
    "$(basename "$config")" "$(weights_bytes "$out")" "$float_ppl" "$ppl"
done
