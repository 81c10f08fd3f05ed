#!/usr/bin/env bash
# The main job on the bundled demo model (examples/demo-model): build ptq, describe the model, measure its
# perplexity and generate text. Uses ../shared's held-out Gutenberg text when present, else a short text
# that ships with the demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR="${PTQ_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j2 --target ptq
PTQ="$BUILD_DIR/tools/ptq"
MODEL=examples/demo-model
DATA=../shared/data/heldout/gutenberg_heldout.txt
[ -f "$DATA" ] || DATA="$MODEL/sample_text.txt"

echo "== model =="
"$PTQ" inspect "$MODEL"
echo; echo "== perplexity ($DATA) =="
"$PTQ" eval --model "$MODEL" --data "$DATA" --window 256 --max-windows 400
echo; echo "== generation (greedy) =="
"$PTQ" generate --model "$MODEL" --prompt "It was a dark and stormy night, and" -n 48
echo; echo "== generation (sampled, temperature 0.8, top-p 0.95) =="
"$PTQ" generate --model "$MODEL" --prompt "The old man looked at the sea" -n 48 -t 0.8 --top-p 0.95 --seed 1
