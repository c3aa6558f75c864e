#!/usr/bin/env bash
# Proves the instruction-count gate bites (issue 12's done-when). Not in `make check`: it
# builds a kernel (incremental in the kept work tree: drivers/xsc and the link, a few
# minutes; a cold cache builds everything, ~10 min on 2 cores). In one run:
#   1. `bench` on this tree must exit 0: the committed benches/baseline.json holds.
#   2. The same tree with benches/fixtures/slow-ring-op.patch appended to the kernel series
#      (four `nop`s per ring op: 4 guest instructions, ~3% of a ring NOP at batch 64, over
#      the 2% threshold, under 1% of most other figures) must exit 1 with ring.nop.b64
#      REGRESSED.
# Works on a copy of the tracked files (as they are in the work tree) in a temp dir; the
# build cache is the usual one (the slowed kernel is one more cache entry under its own key).
# XSC_BIN=<path> uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ -z "${XSC_BIN:-}" ]; then
  cargo build --release --quiet
  XSC_BIN=$repo/target/release/xsc-release
fi
work=$(mktemp -d /tmp/xsc-bench-gate.XXXXXX)
trap 'rm -rf "$work"' EXIT
git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$work"

bench() { # $1: log file; prints the exit code
  local rc=0
  (cd "$work" && "$XSC_BIN" --config xsc.toml bench) >"$1" 2>&1 || rc=$?
  echo "$rc"
}

rc=$(bench "$work/plain.log")
if [ "$rc" != 0 ]; then
  tail -40 "$work/plain.log"
  echo "bench-gate-check: bench on the unchanged series exited $rc, want 0 (baseline stale?)"
  exit 1
fi
grep -E '^  ring\.nop\.b64 ' "$work/plain.log" || true

cp benches/fixtures/slow-ring-op.patch "$work/patches/kernel/0009-bench-slow-ring-op.patch"
echo 0009-bench-slow-ring-op.patch >>"$work/patches/kernel/series"
rc=$(bench "$work/slow.log")
sed -n '/^  figure/,/^bench:/p' "$work/slow.log"
if [ "$rc" != 1 ] || ! grep -qE '^  ring\.nop\.b64 .*REGRESSED' "$work/slow.log"; then
  tail -20 "$work/slow.log"
  echo "bench-gate-check: the slowed kernel gave exit $rc, want 1 with ring.nop.b64 REGRESSED"
  exit 1
fi
echo "bench-gate-check: ok (unchanged series: exit 0; +4 instructions per ring op: exit 1)"
