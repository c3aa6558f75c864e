#!/usr/bin/env bash
# Benchmark (not in CI): what `xsc-release build kernel` costs around make. In one run:
#   1. harness  `build kernel --profile qemu` from a cold cache (resolve, unpack, quilt,
#      configure, verify, make, store)
#   2. bare     `make -j$(nproc) bzImage` on the same prepared tree after `make clean`
#      (same .config, same KBUILD_* environment)              -> ratio 1/2
#   3. no-op    `build kernel` again: a cache hit, no make at all
#   4. incremental: one comment line of the last patch changed, `build kernel` again
#      (quilt pop/push in the kept tree; kbuild rebuilds the one file and relinks)
# Works on a throwaway copy of xsc.toml + patches/ with its own cache, so neither your
# cache nor your patches are touched. Two full kernel builds: ~20-40 min on 2 cores.
# SERIES_FROM=<dir> takes xsc.toml and patches/ from another checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
from=${SERIES_FROM:-$repo}
cargo build --release --quiet
BIN=$repo/target/release/xsc-release
work=$(mktemp -d /tmp/xsc-bench-kernel.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/repo"
cp "$from/xsc.toml" "$work/repo/"
cp -r "$from/patches" "$work/repo/"
git -C "$work/repo" init -q
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=bench -c user.email=bench@localhost commit -qm bench
export XSC_CACHE_DIR=$work/cache
cd "$work/repo"

now() { date +%s.%N; }
# Every harness run must succeed; on failure show why before the trap deletes the logs.
harness() {
  local out=$1; shift
  "$BIN" --config xsc.toml build kernel --profile qemu "$@" >"$out" 2>&1 || { tail -20 "$out"; exit 1; }
}
secs() { echo "$2 - $1" | bc; }

s=$(now); harness "$work/1.out"; e=$(now)
harness=$(secs "$s" "$e")

tree=$XSC_CACHE_DIR/work/kernel/qemu/linux
stamp=$(sed -n 's/.*"kbuild_build_timestamp": "\(.*\)".*/\1/p' "$XSC_CACHE_DIR"/stages/kernel/*/entry.json | head -1)
make -C "$tree" -s clean
s=$(now)
KBUILD_BUILD_TIMESTAMP="$stamp" KBUILD_BUILD_USER=xsc KBUILD_BUILD_HOST=xsc-release KBUILD_BUILD_VERSION=1 \
  make -C "$tree" -j"$(nproc)" bzImage >"$work/bare.log" 2>&1 || { tail -20 "$work/bare.log"; exit 1; }
e=$(now)
bare=$(secs "$s" "$e")

s=$(now); harness "$work/3.out"; e=$(now)
noop=$(secs "$s" "$e")
grep -q "cache hit" "$work/3.out" || { echo "no-op build was not a cache hit:"; cat "$work/3.out"; exit 1; }

# A comment line inside a file the last patch adds or changes: same hunk sizes, new content.
last=$(grep -v '^#' patches/kernel/series | sed '/^$/d' | tail -1)
sed -i '0,/^+ \* /s//+ * (bench edit) /' "patches/kernel/$last"
s=$(now); harness "$work/4.out"; e=$(now)
incr=$(secs "$s" "$e")
grep -q "incremental" "$work/4.out" || { echo "rebuild was not incremental:"; cat "$work/4.out"; exit 1; }

printf 'harness build kernel (cold): %8.1f s\n' "$harness"
printf 'bare make bzImage:           %8.1f s\n' "$bare"
printf 'ratio harness/bare:          %8.2f\n' "$(echo "$harness / $bare" | bc -l)"
printf 'no-op build (cache hit):     %8.2f s\n' "$noop"
printf 'incremental (1 patch line):  %8.1f s\n' "$incr"
