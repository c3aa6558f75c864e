#!/bin/sh
# Build the guest initramfs for the glibc XSC checks.
set -e
S=${SYSROOT:?set SYSROOT to an installed XSC glibc sysroot}; B=${GLIBC_BUILD:?set GLIBC_BUILD to its build directory}; G=${OUT:-$PWD/guest}; SRC=$(cd "$(dirname "$0")" && pwd)
CC="gcc --sysroot=$S -B$S/usr/lib64/ -L$S/usr/lib64"
DYN="-Wl,--dynamic-linker=/xsc/sysroot/lib64/ld-linux-x86-64.so.2 -Wl,-rpath=/xsc/sysroot/lib64"
mkdir -p $G; cp "$SRC"/xsc-glibc-demo.c "$SRC"/envexec.c $G/ 2>/dev/null || true; cd $G
gcc -static -O2 -Wall -Wextra -Werror -pthread -o init "$SRC/../../../guest-tests/init/xsc-init.c"
gcc -static -O2 -Wall -o envexec envexec.c
$CC -static -O2 -Wall -Wextra -pthread -o xsc-glibc-demo xsc-glibc-demo.c
$CC -O2 -Wall -Wextra -pthread $DYN -o xsc-glibc-demo-dyn xsc-glibc-demo.c
$CC -static -pthread -o tst-xsc $B/misc/tst-xsc.o $B/support/libsupport_nonshared.a
cp $B/misc/tst-xsc tst-xsc-dyn
R=$G/root; rm -rf $R; mkdir -p $R/dev $R/proc $R/sys $R/tmp $R/run $R/xsc/bin $R/xsc/sysroot/lib64
cp init $R/init
cp xsc-glibc-demo xsc-glibc-demo-dyn tst-xsc tst-xsc-dyn envexec $R/xsc/bin/
cp xsc-glibc-demo $R/xsc/bin/xsc-glibc-demo-suid
cp $S/lib64/ld-linux-x86-64.so.2 $S/lib64/libc.so.6 $R/xsc/sysroot/lib64/
# pthread_cancel dlopens libgcc_s.so.1 from the default path of the sysroot ld.so
mkdir -p $R/lib64 && cp /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 $R/lib64/
strip --strip-debug $R/xsc/bin/* $R/xsc/sysroot/lib64/* $R/lib64/*
chmod 4755 $R/xsc/bin/xsc-glibc-demo-suid
T="$(printf '\t')"
cat > $R/xsc/plan <<PLAN
demo_static${T}300${T}/xsc/bin/xsc-glibc-demo
demo_dynamic${T}300${T}/xsc/bin/xsc-glibc-demo-dyn
tst_xsc_static${T}300${T}/xsc/bin/tst-xsc
tst_xsc_dynamic${T}300${T}/xsc/bin/envexec${T}GLIBC_TUNABLES=glibc.xsc.enable=1${T}/xsc/sysroot/lib64/ld-linux-x86-64.so.2${T}--library-path${T}/xsc/sysroot/lib64${T}/xsc/bin/tst-xsc-dyn
PLAN
# A few glibc tests from the build tree, each with routing off and on
# (dynamic, through the sysroot's ld.so).  TIMEOUTFACTOR: TCG is slow.
mkdir -p $R/xsc/glibc-tests
echo "tst-cancel4 opens ./Makefile" > $R/xsc/glibc-tests/Makefile
for t in nptl/tst-cancel4 nptl/tst-cancel2 nptl/tst-cancel-self posix/tst-preadwrite64 io/tst-openat socket/tst-accept4 time/tst-clock_nanosleep posix/tst-nanosleep posix/tst-fork io/test-lfs; do
  n=$(echo $t | tr '/-' '__'); cp $B/$t $R/xsc/glibc-tests/$n; strip --strip-debug $R/xsc/glibc-tests/$n
  for mode in off on; do
    tun=""; [ $mode = on ] && tun="${T}GLIBC_TUNABLES=glibc.xsc.enable=1"
    echo "glibc_${n}_${mode}${T}600${T}/xsc/bin/envexec${T}--cd=/xsc/glibc-tests${T}--lo-up${T}TIMEOUTFACTOR=10${tun}${T}/xsc/sysroot/lib64/ld-linux-x86-64.so.2${T}--library-path${T}/xsc/sysroot/lib64${T}/xsc/glibc-tests/$n" >> $R/xsc/plan
  done
done
cd $R && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 > $G/glibc-xsc.cpio
ls -la $G/glibc-xsc.cpio
