#!/usr/bin/env bash
# The real-kernel bisect session of docs/bisect.md (outside CI; `make bisect-demo`).
#
# In a scratch clone of this checkout's HEAD it commits, after GOOD = HEAD:
#   1. an unrelated docs commit,
#   2. "xsc: timer: refuse clock ids clock_getres cannot report": an edit of the real
#      series (patches/kernel/0007-xsc-add-timer-operations.patch) that gives the
#      clock_getres op a check refusing every clock but CLOCK_REALTIME, so the ring
#      suite's timer case fails (the op is still offered by PROBE: the case is not skipped),
#   3. three more unrelated commits (docs, a scenario comment, a guest-test comment),
# then runs `xsc-release bisect xsc-ring --commits GOOD..HEAD` under TCG and checks that it
# names commit 2. Every step line prints its build time (the kernel: a cache hit, or an
# incremental rebuild of the kept work tree) and its boot time (one boot, two when it fails).
# Then, at the breaking commit, `bisect xsc-ring --series kernel --good 0003` must name
# 0007-xsc-add-timer-operations.patch (every step a different prefix: an incremental
# rebuild). SESSIONS=commits or SESSIONS=series runs only one of the two.
#
# Why a bench and not a test: it builds and boots the real kernel (minutes), and what it
# demonstrates is a cost (the time of one step), like the other scripts here.
#
# The cache is XSC_CACHE_DIR (default: the machine's). The first run against a cache without
# the current kernel does one cold kernel build first (10-40 min on 2 cores); the bisect then
# rebuilds the kept work tree `<cache>/work/kernel/qemu` incrementally and leaves it with the
# broken series pushed (the next build of any series pops it and pushes its own).
# ACCEL=kvm|tcg|auto (default tcg). KEEP=1 keeps the scratch clone (its out/runs has every
# step's serial.log; the printed run dirs and reproduce lines point into it).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cargo build --quiet
BIN=$repo/target/debug/xsc-release
accel=${ACCEL:-tcg}
sessions=${SESSIONS:-both}
scratch=$(mktemp -d /tmp/xsc-bisect-demo.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$scratch"' EXIT

git clone -q "$repo" "$scratch/xsc"
cd "$scratch/xsc"
git config user.name "bisect demo"
git config user.email "bisect-demo@example.invalid"
good=$(git rev-parse HEAD)

commit() { git commit -qam "$1"; git rev-parse HEAD; }
# Every edit must change something: a drifted file would make the session meaningless.
edit() {
  local file=$1 perl_expr=$2 before
  before=$(sha256sum "$file")
  perl -0pi -e "$perl_expr" "$file"
  [ "$before" != "$(sha256sum "$file")" ] || { echo "bisect demo: edit of $file did not apply" >&2; exit 2; }
}

echo "Bisect notes for the timer ops." >>docs/bisect.md
commit "docs: a note on the timer ops" >/dev/null

p=patches/kernel/0007-xsc-add-timer-operations.patch
edit "$p" 's/^\@\@ -0,0 \+1,25 \@\@$/\@\@ -0,0 +1,32 \@\@/m'
edit "$p" 's/^\+#include <linux\/init.h>\n/+#include <linux\/init.h>\n+#include <linux\/errno.h>\n+#include <linux\/time.h>\n/m'
edit "$p" 's/^\+static const struct xsc_op_desc xsc_timer_ops\[\] = \{\n/+static long xsc_getres_check(const u64 *args)\n+{\n+\treturn args[0] == CLOCK_REALTIME ? 0 : -EINVAL;\n+}\n+\n+static const struct xsc_op_desc xsc_timer_ops[] = {\n/m'
edit "$p" 's/\{ \.nr = __NR_clock_getres \}/{ .nr = __NR_clock_getres, .check = xsc_getres_check }/'
culprit=$(commit "xsc: timer: refuse clock ids clock_getres cannot report")

echo "Step times are printed per step." >>README.md
commit "docs: step times" >/dev/null
edit scenarios/smoke.toml 's/^# The fast loop:/# The fast loop (a minute under TCG):/m'
commit "scenarios: smoke comment" >/dev/null
edit guest-tests/sanity.c 's/small honest libc/small, honest libc/'
commit "sanity: comment" >/dev/null

echo "bisect demo: GOOD $good, breaking commit $culprit, scratch clone $scratch/xsc"
# One session: its output is printed and kept; it must exit 0 and print the wanted line.
session() {
  local wanted=$1 start status=0; shift
  start=$(date +%s)
  "$BIN" --config xsc.toml bisect xsc-ring --accel "$accel" "$@" | tee "$scratch/bisect.out" || status=$?
  echo "bisect demo: exit $status, $(($(date +%s) - start)) s in all"
  [ "$status" = 0 ] || exit "$status"
  grep -q "^$wanted" "$scratch/bisect.out" || { echo "bisect demo: expected '$wanted'" >&2; exit 1; }
}
if [ "$sessions" != series ]; then
  session "first bad commit: $culprit " --commits "$good..HEAD"
fi
if [ "$sessions" != commits ]; then
  git checkout -q "$culprit"
  session "first bad patch: 0007-xsc-add-timer-operations.patch " --series kernel --good 0003
fi
echo "bisect demo: found what was broken"
