#!/usr/bin/env bash
# Float perplexity of ../shared/data/models/ptq-small-32m on both reference texts at windows 256 and
# 512, compared with what Hugging Face transformers measured (reference.json). Prints a Markdown table
# (the one in docs/ACCURACY.md). Usage: scripts/verify_reference.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
SHARED="${PTQ_SHARED_DIR:-../shared}/data"
MODEL="$SHARED/models/ptq-small-32m"
[ -d "$MODEL" ] || { echo "$MODEL not found" >&2; exit 1; }
echo "| text | window | ptq ppl | reference ppl | relative difference | scored tokens |"
echo "|---|---|---|---|---|---|"
for text in heldout/gutenberg_heldout.txt wikitext2/test.txt; do
  for window in 256 512; do
    result=$("$BUILD_DIR/tools/ptq" ${PTQ_THREADS:+--threads "$PTQ_THREADS"} eval --model "$MODEL" --data "$SHARED/$text" --window "$window" --batch 4 --json)
    python3 - "$MODEL/reference.json" "$(basename "$text")" "$window" "$result" <<'PY'
import json, sys
reference = json.load(open(sys.argv[1]))["eval"][sys.argv[2]]
ours = json.loads(sys.argv[4])
ref = reference[f"ppl_window{sys.argv[3]}"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {ours['ppl']:.4f} | {ref:.4f} | {abs(ours['ppl'] / ref - 1) * 100:.4f}% | {ours['scored_tokens']} |")
PY
  done
done
