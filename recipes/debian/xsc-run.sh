#!/bin/sh
# xsc-run PROGRAM [ARGS...]: run a dynamically linked program with the XSC glibc installed
# side by side in /opt/xsc-glibc, with routing through the XSC ring switched on
# (recipes/debian/xsc-run.sh of xsc-release). Debian's own libc stays the system libc; only
# programs started this way use the XSC one. The loader is invoked explicitly, so set-id
# programs never run with it (the kernel ignores set-id bits for an interpreted start), and
# AT_SECURE programs ignore GLIBC_TUNABLES anyway.
[ $# -ge 1 ] || { echo "usage: xsc-run PROGRAM [ARGS...]" >&2; exit 2; }
prog=$1
case "$prog" in
*/*) ;;
*) prog=$(command -v -- "$prog") || { echo "xsc-run: $1: not found" >&2; exit 127; } ;;
esac
case "$prog" in
*/*) ;;
*) echo "xsc-run: $1: a shell builtin, not a program" >&2; exit 127 ;;
esac
shift
GLIBC_TUNABLES="glibc.xsc.enable=1${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
export GLIBC_TUNABLES
# prog contains a slash, so the loader never takes it for one of its own options.
exec /opt/xsc-glibc/lib64/ld-linux-x86-64.so.2 --library-path /opt/xsc-glibc/lib64 "$prog" "$@"
