#!/usr/bin/env bash
# Benchmark (not in CI): what the harness adds to a boot. Alternates
#   xsc-release test --kernel K --initrd I        (QMP, -S, socket chardevs, observers)
#   qemu-system-x86_64 <the same machine argv>    (serial to a file, nothing else)
# over the same images, RUNS times each, and prints the median ratio. Goal: <= 1.05.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
cargo build --release --quiet
BIN=target/release/xsc-release
work=$(mktemp -d /tmp/xsc-bench-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The stock kernel from the cache (the smoke scenario fetches it).
$BIN test smoke --accel tcg >/dev/null
K=$(ls -t ~/.cache/xsc-release/stages/stock-kernel/*/vmlinuz | head -1)

# A minimal KTAP-printing initramfs, identical for both sides.
mkdir -p "$work/root/bin"
cp /bin/busybox "$work/root/bin/busybox"
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
echo "KTAP version 1"; echo "1..1"; echo "ok 1 bench"
/bin/busybox poweroff -f
INIT
chmod 755 "$work/root/init"
(cd "$work/root" && find . | sort | cpio -o -H newc --quiet > "$work/init.cpio")
I="$work/init.cpio"

first=$($BIN test --kernel "$K" --initrd "$I" --accel tcg | sed -n 's/.*state in //p')
argv=$(cat "$first/adhoc/qemu.argv")
# The same machine without the control channels: drop -S, both chardevs, -serial chardev, -mon.
bare=$(echo "$argv" | sed -e 's/ -S / /' -e 's/ -chardev [^ ]*//g' -e 's/ -serial chardev:serial0//' -e 's/ -mon [^ ]*//')
bare="$bare -serial file:$work/bare.serial"

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
h=(); b=()
for i in $(seq "$RUNS"); do
  h+=("$(t $BIN test --kernel "$K" --initrd "$I" --accel tcg)")
  b+=("$(t eval "$bare")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mh=$(median "${h[@]}"); mb=$(median "${b[@]}")
echo "harness runs: ${h[*]}"
echo "bare runs:    ${b[*]}"
printf 'median harness %.2fs, bare %.2fs, ratio %.3f (goal <= 1.05)\n' "$mh" "$mb" "$(echo "$mh / $mb" | bc -l)"
