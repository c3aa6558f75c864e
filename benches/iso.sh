#!/usr/bin/env bash
# Benchmark (not in CI): the Debian live ISO stage.
#   cold build   `build debian --force` after dropping the stage entry (the .deb download
#                cache and the kernel stay: that is what a CI machine has after its first run)
#   warm build   `build debian` with the entry in the cache (key computation only)
#   size         of iso/debian/xsc-debian-amd64.iso
#   boots        each release-gate scenario, spawn → verdict, under TCG, one at a time
# Needs root (debootstrap, chroot). Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=target/release/xsc-release
CACHE=$($BIN cache path)
secs() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }

rm -rf "$CACHE"/stages/debian-iso
printf 'build cold (debs cached): %6.1f s\n' "$(secs $BIN build debian)"
printf 'build warm (cache hit):   %6.1f s\n' "$(secs $BIN build debian)"
printf 'iso size:                 %6d bytes\n' "$(stat -c %s iso/debian/xsc-debian-amd64.iso)"
for s in debian-bios debian-uefi debian-uefi-disk debian-login; do
  printf '%-25s %6.1f s\n' "boot $s:" "$(secs $BIN test "$s" --accel tcg --no-build)"
done
