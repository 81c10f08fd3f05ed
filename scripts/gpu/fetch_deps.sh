#!/usr/bin/env bash
# Runs HERE (Debian 12 with apt reachable). Prepares what the GPU device machine (no apt, no internet;
# CUDA + PyTorch/LibTorch + CMake + ninja + g++ only) needs to build and evaluate ptq:
#   .deps/root.tar.xz  Debian packages of our C++ dependencies, unpacked (dpkg -x) and pruned
#   .deps/shared/data  the models and texts the evaluations read, laid out like ../shared/data,
#                      the bf16 weights split into high / low bytes so the high half compresses
# Both are ignored (.gitignore: /.deps/) and travel through the device tool's `carry`.
# Usage: scripts/gpu/fetch_deps.sh [--no-data] [--with-dnnl]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
DEPS=$REPO/.deps
ROOT=$DEPS/root
SHARED_SRC=${PTQ_SHARED_DIR:-$REPO/../shared}
WITH_DATA=1
WITH_DNNL=0
for a in "$@"; do
  case $a in
    --no-data) WITH_DATA=0 ;;
    --with-dnnl) WITH_DNNL=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  nlohmann-json3-dev libfmt-dev libfmt9 libcli11-dev libboost1.74-dev
  libsentencepiece-dev libsentencepiece0            # no protobuf dependency (objdump -p: libstdc++ only)
  libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2
  libgtest-dev libgmock-dev googletest              # googletest: sources, a fallback if the .a do not link
  pkgconf pkgconf-bin libpkgconf3                   # CMake's FindPkgConfig needs a pkg-config program
)
# backends/cpu switches itself off without oneDNN; --with-dnnl brings it along (~7 MB more packed; libdnnl needs the OpenCL loader).
if [ $WITH_DNNL = 1 ]; then PACKAGES+=(libdnnl-dev libdnnl2 ocl-icd-libopencl1); fi

mkdir -p "$DEPS/debs"
(cd "$DEPS/debs" && apt-get download "${PACKAGES[@]}")

rm -rf "$ROOT"; mkdir -p "$ROOT"
for p in "${PACKAGES[@]}"; do dpkg -x "$(ls "$DEPS"/debs/${p}_*.deb | tail -1)" "$ROOT"; done

# Boost: keep only the headers that property_tree (framework/ptq_config_property_tree.cc) pulls in,
# plus boost/config and boost/predef whole (their branches depend on the compiler and standard library).
probe=$(mktemp --suffix=.cc)
grep -h '#include <boost/' "$REPO"/framework/*.cc "$REPO"/framework/*.h > "$probe" || true
echo '#include <boost/version.hpp>' >> "$probe"
g++ -std=c++17 -M -I "$ROOT/usr/include" "$probe" | tr ' \\' '\n\n' | grep "^$ROOT/usr/include/boost/" | sort -u \
  | sed "s#^$ROOT/##" > "$DEPS/boost_keep.txt"
rm -f "$probe"
(cd "$ROOT" && find usr/include/boost/config usr/include/boost/predef -type f >> "$DEPS/boost_keep.txt")
mv "$ROOT/usr/include/boost" "$DEPS/boost_full"
(cd "$DEPS/boost_full/.." && true)
while read -r f; do
  mkdir -p "$ROOT/$(dirname "$f")"
  cp "$DEPS/boost_full/${f#usr/include/boost/}" "$ROOT/$f"
done < <(sort -u "$DEPS/boost_keep.txt")
rm -rf "$DEPS/boost_full"

# Prune what the build does not use.
rm -rf "$ROOT"/usr/share/doc "$ROOT"/usr/share/man "$ROOT"/usr/share/lintian "$ROOT"/usr/share/aclocal
rm -f "$ROOT"/usr/lib/x86_64-linux-gnu/libpcre2-{16,32,posix}* "$ROOT"/usr/lib/x86_64-linux-gnu/libpcre2-8.a \
      "$ROOT"/usr/lib/x86_64-linux-gnu/libutf8proc.a "$ROOT"/usr/lib/x86_64-linux-gnu/pkgconfig/libpcre2-{16,32,posix}.pc
rm -rf "$ROOT"/usr/include/pcre2posix.h
# Relocatable .pc files: absolute /usr becomes a path relative to the .pc file (pkgconf's ${pcfiledir}).
for pc in "$ROOT"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
  sed -i -E 's#^(prefix|exec_prefix|libdir|includedir)=/usr#\1=${pcfiledir}/../../..#' "$pc"
done
for pc in "$ROOT"/usr/share/pkgconfig/*.pc; do
  [ -e "$pc" ] && sed -i -E 's#^(prefix|exec_prefix|libdir|includedir)=/usr#\1=${pcfiledir}/../..#' "$pc"
done

rm -f "$DEPS/root.tar.xz"
tar -C "$DEPS" -cJf "$DEPS/root.tar.xz" root
echo "fetch_deps: $(du -sh "$ROOT" | cut -f1) unpacked, $(du -b "$DEPS/root.tar.xz" | cut -f1) bytes packed"

if [ $WITH_DATA = 1 ]; then
  D=$DEPS/shared/data
  M=$D/models/ptq-small-32m
  mkdir -p "$M" "$D/heldout" "$D/wikitext2"
  src=$SHARED_SRC/data/models/ptq-small-32m
  cp "$src"/config.json "$src"/generation_config.json "$src"/tokenizer.json "$src"/tokenizer_config.json "$M"/
  [ -e "$src/reference.json" ] && cp "$src/reference.json" "$M"/
  # The 64 MB bf16 model alone would fill the 64 MiB transfer; its high bytes (sign, exponent, top of the
  # mantissa) compress to a third with xz, the low bytes do not compress at all.
  python3 - "$src/model.safetensors" "$M/model" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
h = 8 + struct.unpack('<Q', d[:8])[0]
body = d[h:]
assert len(body) % 2 == 0
open(sys.argv[2] + '.hdr', 'wb').write(d[:h])
open(sys.argv[2] + '.lo', 'wb').write(body[0::2])
open(sys.argv[2] + '.hi', 'wb').write(body[1::2])
PY
  rm -f "$M/model.hi.xz"; xz -6 -T0 "$M/model.hi"
  xz -6 -T0 -c "$SHARED_SRC/data/heldout/gutenberg_heldout.txt" > "$D/heldout/gutenberg_heldout.txt.xz"
  xz -6 -T0 -c "$SHARED_SRC/data/wikitext2/test.txt" > "$D/wikitext2/test.txt.xz"
  echo "fetch_deps: data $(du -sb "$DEPS/shared" | cut -f1) bytes"
fi
echo "fetch_deps: working tree $(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes (+ carry must stay under 67108864)"
