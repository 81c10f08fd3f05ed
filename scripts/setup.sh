#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of ptq from Debian's archive.
# Idempotent: re-running on a set-up machine only re-checks the packages.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev            # LibTorch 1.13 (C++ API)
  libdnnl-dev             # oneDNN 2.6: int8 matmul on AMX / VNNI
  libopenblas0-pthread    # without it LibTorch's fp32 matmul runs on reference BLAS (~150x slower)
  nlohmann-json3-dev libboost-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libsentencepiece-dev
  libpcre2-dev            # Unicode-aware regex for the tokenizers' pre-tokenization (\p{L}, look-ahead)
  libutf8proc-dev         # NFC normalization for tokenizer.json normalizers
  time                    # /usr/bin/time -v: peak RSS in scripts/stream_memory_report.sh
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
