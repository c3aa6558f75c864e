#!/usr/bin/env bash
# Benchmark (not in CI) for the XSC glibc, printed as ratios in one run:
#   1. routed vs trap path, per call, in the XSC guest: scenarios/bench/xsc-glibc-bench.toml
#      runs guest-tests/xsc_glibc_bench.c (read/write of small buffers, each measured with
#      routing on and off); its `# ratio` lines are printed here.
#   2. the glibc stage cold (a throwaway cache: unpack, quilt, configure, make, install,
#      runtime, tests) vs with the cache (a hit: key computation only) vs incremental (a
#      header line added to the last patch: quilt pop/push in the kept tree, make
#      traversal). The cold build takes ~8-10 min on 2 cores; SKIP_BUILD=1 skips part 2.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cargo build --release --quiet
BIN=$repo/target/release/xsc-release
work=$(mktemp -d /tmp/xsc-bench-glibc.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== routed vs trap path (XSC guest, TCG, WALL CLOCK: moves with host load; instruction counts: make bench-ring) =="
"$BIN" test "$repo/scenarios/bench/xsc-glibc-bench.toml" --accel tcg >"$work/bench.out" 2>&1 || {
  tail -30 "$work/bench.out"; exit 1; }
state=$(sed -n 's/.*state in //p' "$work/bench.out" | head -1)
log=$(find "$state" -name serial.log | head -1)
grep -a -E '# [a-z_0-9]+: [0-9]+ iterations|# ratio routed/trap' "$log" | sed 's/^ *# //'

[ "${SKIP_BUILD:-0}" = 1 ] && exit 0

echo "== glibc stage: cold vs cached vs incremental =="
mkdir -p "$work/repo"
cp -r "$repo/xsc.toml" "$repo/patches" "$work/repo/"
mkdir -p "$work/repo/guest-tests" && cp "$repo/guest-tests/glibc-tests.list" "$work/repo/guest-tests/"
git -C "$work/repo" init -q && git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=bench -c user.email=bench@localhost commit -qm bench
export XSC_CACHE_DIR=$work/cache
cd "$work/repo"
now() { date +%s.%N; }
run() { local out=$1; "$BIN" --config xsc.toml build glibc >"$out" 2>&1 || { tail -20 "$out"; exit 1; }; }
s=$(now); run "$work/cold.out"; cold=$(echo "$(now) - $s" | bc)
s=$(now); run "$work/hit.out"; hit=$(echo "$(now) - $s" | bc)
last=$(grep -v '^#' patches/glibc/series | sed '/^$/d' | tail -1)
sed -i "1a X-Bench: $(date +%s)" "patches/glibc/$last"   # header line: same diff, new hash
s=$(now); run "$work/incr.out"; incr=$(echo "$(now) - $s" | bc)
grep -q 'cache hit' "$work/hit.out" || { echo "second run was not a cache hit"; cat "$work/hit.out"; exit 1; }
printf 'cold        %8.1f s\n' "$cold"
printf 'cached      %8.1f s   ratio cold/cached      %6.0fx\n' "$hit" "$(echo "$cold / $hit" | bc -l)"
printf 'incremental %8.1f s   ratio cold/incremental %6.1fx\n' "$incr" "$(echo "$cold / $incr" | bc -l)"
