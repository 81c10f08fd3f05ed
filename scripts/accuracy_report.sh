#!/usr/bin/env bash
# Float vs quantized perplexity, weight bytes and quantize time of a model for several recipes, as a
# Markdown table (the tables in docs/ACCURACY.md): a thin wrapper around `ptq compare`, which quantizes
# each recipe in memory with the same code as `ptq quantize`. Extra options go to `ptq compare` (see
# `ptq compare --help`: --data is repeatable, --baseline w4a16_rtn_g128 adds gap ratios, --save-dir DIR
# keeps the checkpoints).
#   scripts/accuracy_report.sh [--model DIR] [--data FILE]... [--window N] [--max-windows N] [OPTION...] CONFIG...
# Defaults: ../shared's ptq-small-32m, heldout/gutenberg_heldout.txt, window 512, every window.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${PTQ_SHARED_DIR:-../shared}/data"
PTQ="${PTQ_BUILD_DIR:-build}/tools/ptq"
args=("$@")
has() { local a; for a in "${args[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
[ $# -gt 0 ] || { echo "usage: $0 [--model DIR] [--data FILE]... [--window N] [--max-windows N] [OPTION...] CONFIG..." >&2; exit 2; }
defaults=()
has --model || has -m || defaults+=(--model "$SHARED/models/ptq-small-32m")
has --data || has -d || defaults+=(--data "$SHARED/heldout/gutenberg_heldout.txt")
has --window || has -w || defaults+=(--window 512)
has --batch || defaults+=(--batch 4)
exec "$PTQ" ${PTQ_THREADS:+--threads "$PTQ_THREADS"} compare "${defaults[@]}" --markdown "$@"
