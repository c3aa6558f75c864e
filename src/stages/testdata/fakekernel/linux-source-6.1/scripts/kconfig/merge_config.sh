#!/bin/sh
# Stand-in for the kernel's merge_config.sh -m: append the fragments to the base.
[ "$1" = "-m" ] || exit 2
base=$2; shift 2
cat "$@" >> "$base"
