#!/usr/bin/env bash
# Peak resident memory of layer-streamed quantization (`ptq quantize --stream`) against the size of the
# float weights it quantizes: the "larger than memory" measurement of docs/ROBUSTNESS.md.
#
# Makes a Llama-shaped model with random weights (TinyLlama's layer shape: hidden 2048, MLP 5632,
# 32 heads / 4 KV heads, vocab 32000; LAYERS decoder layers, float32 by default: 12 layers = 2.6 GB),
# quantizes it with RTN (W4A16 g128) and AWQ (W4A16 g128, 8 x 128 calibration tokens), streamed, under
# /usr/bin/time -v, and prints peak RSS / float weight bytes for each. With INMEMORY=1 it also runs the
# ordinary in-memory RTN for comparison (needs memory for the whole float model).
#
#   scripts/stream_memory_report.sh            # BUILD=build LAYERS=12 DTYPE=float32 WORK=/tmp/ptq_stream_mem
#   LAYERS=8 DTYPE=bfloat16 RECIPES=rtn INMEMORY=1 scripts/stream_memory_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LAYERS=${LAYERS:-12}
DTYPE=${DTYPE:-float32}
WORK=${WORK:-/tmp/ptq_stream_mem}
INMEMORY=${INMEMORY:-0}
RECIPES=${RECIPES:-"rtn awq"}  # which streamed runs: rtn, awq or both
PTQ="$BUILD/tools/ptq"
[ -x "$PTQ" ] || { echo "stream_memory_report.sh: $PTQ not built (cmake --build $BUILD --target ptq)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "stream_memory_report.sh: /usr/bin/time missing (scripts/setup.sh installs it)" >&2; exit 1; }
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$WORK"

MODEL="$WORK/llama_${LAYERS}l_${DTYPE}"
if [ ! -f "$MODEL/config.json" ]; then
  cat > "$WORK/shape.json" <<JSON
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632,
 "num_attention_heads": 32, "num_key_value_heads": 4, "num_hidden_layers": $LAYERS, "vocab_size": 32000,
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
 "torch_dtype": "$DTYPE"}
JSON
  "$PTQ" make-random-model --config "$WORK/shape.json" --dtype "$DTYPE" -o "$MODEL"
fi
FLOAT_BYTES=$(du -cb "$MODEL"/*.safetensors | tail -1 | cut -f1)

CALIB="$WORK/calibration.txt"
if [ ! -f "$CALIB" ]; then
  if [ -f ../shared/data/corpus/train_00.txt ]; then head -c 2000000 ../shared/data/corpus/train_00.txt > "$CALIB"
  else python3 -c "import random; r=random.Random(0); print(' '.join(''.join(r.choice('abcdefghij') for _ in range(r.randint(1,8))) for _ in range(300000)))" > "$CALIB"; fi
fi
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
for name in ["w4a16_rtn_g128", "w4a16_awq_g128"]:
    c = json.load(open(f"configs/{name}.json"))
    c["calibration"].update({"samples": 8, "seq_len": 128})
    json.dump(c, open(f"{work}/{name}.json", "w"), indent=2)
PY

# peak RSS (kB) of one command, its wall time, from /usr/bin/time -v
measure() {  # name, then the ptq arguments
  local name=$1; shift
  /usr/bin/time -v "$PTQ" --quiet "$@" > "$WORK/$name.out" 2> "$WORK/$name.time" || { cat "$WORK/$name.out" "$WORK/$name.time"; exit 1; }
  local rss wall
  rss=$(grep "Maximum resident set size" "$WORK/$name.time" | awk '{print $NF}')
  wall=$(grep "Elapsed (wall clock)" "$WORK/$name.time" | awk '{print $NF}')
  python3 -c "import sys; rss=int(sys.argv[1])*1024; f=int(sys.argv[2]); print(f'{sys.argv[3]:<22} peak RSS {rss/2**20:8.0f} MiB = {100*rss/f:5.1f}% of the float weights ({f/2**20:.0f} MiB), wall {sys.argv[4]}')" "$rss" "$FLOAT_BYTES" "$name" "$wall"
}

echo "model: $LAYERS layers, $DTYPE, $(numfmt --to=iec "$FLOAT_BYTES") of float weights; $(nproc) cores"
for recipe in $RECIPES; do
  extra=()
  [ "$recipe" = awq ] && extra=(--calib "$CALIB")
  measure "${recipe}_streamed" quantize --stream -m "$MODEL" -c "$WORK/w4a16_${recipe}_g128.json" "${extra[@]}" -o "$WORK/out_$recipe"
done
if [ "$INMEMORY" = 1 ]; then
  measure rtn_in_memory quantize -m "$MODEL" -c "$WORK/w4a16_rtn_g128.json" -o "$WORK/out_rtn_mem"
  cmp "$WORK/out_rtn/model.safetensors" "$WORK/out_rtn_mem/model.safetensors" && echo "streamed and in-memory RTN checkpoints: identical bytes"
fi
