#!/bin/sh
# Throughput of xsc-release's one-pass SHA-256 + BLAKE2b-512 + minisign signature against
# sha256sum, b2sum and `openssl dgst -sha256` on one page-cached random file.
#
#   benches/hash_sign.sh [SIZE_MIB] [ROUNDS]      (defaults: 2048 MiB, best of 3)
#
# Ratios are throughput relative to each tool (>1 = we are faster). Goal: >= 0.95x b2sum,
# since BLAKE2b-512 is the slower of our two hashes and runs on its own thread. On a busy
# shared machine the two threads cannot overlap; see docs/releasing.md for how it was run.
set -eu
size=${1:-2048}
rounds=${2:-3}
cd "$(dirname "$0")/.."
cargo build --quiet --release --example hash_sign
bin=target/release/examples/hash_sign
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
dd if=/dev/urandom of="$tmp/big.bin" bs=1M count="$size" status=none
cat "$tmp/big.bin" > /dev/null

now() { date +%s.%N; }
best() { # best wall time (seconds) of $rounds runs of "$@"
    b=""
    i=0
    while [ "$i" -lt "$rounds" ]; do
        s=$(now); "$@" > "$tmp/out"; e=$(now)
        b=$(awk -v s="$s" -v e="$e" -v b="$b" 'BEGIN { t = e - s; if (b == "" || t < b) b = t; printf "%.3f", b }')
        i=$((i + 1))
    done
    echo "$b"
}

ours=$(best "$bin" "$tmp/big.bin"); our_sha=$(cut -d' ' -f1 "$tmp/out")
sha=$(best sha256sum "$tmp/big.bin"); ref_sha=$(cut -d' ' -f1 "$tmp/out")
b2=$(best b2sum "$tmp/big.bin")
ossl=$(best openssl dgst -sha256 "$tmp/big.bin")
[ "$our_sha" = "$ref_sha" ] || { echo "sha256 mismatch: $our_sha vs $ref_sha" >&2; exit 1; }

echo "file: $size MiB, page-cached; best of $rounds; $(nproc) CPUs"
printf '%-34s %8s %10s %14s\n' tool seconds MiB/s "ours vs tool"
row() { awk -v n="$1" -v t="$2" -v o="$ours" -v m="$size" 'BEGIN { printf "%-34s %8.3f %10.0f %13.2fx\n", n, t, m / t, t / o }'; }
row "xsc-release hash+sign (sha256+b2b)" "$ours"
row "sha256sum" "$sha"
row "b2sum" "$b2"
row "openssl dgst -sha256" "$ossl"
