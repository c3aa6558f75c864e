#!/bin/sh
# The XSC self-test of the xsc-tests package (Debian ISO, EL) (xsc-release, recipes/debian/xsc-selftest.sh).
# Runs only when QEMU passes `-fw_cfg name=opt/org.xsc/selftest,string=1`: then it runs the
# release-gate guest programs through xsc-init's plan runner (KTAP on the console, the same
# semantics as the test initramfs) and powers the machine off. Otherwise it does nothing and
# the system boots to its login prompts.
ITEM=/sys/firmware/qemu_fw_cfg/by_name/opt/org.xsc/selftest/raw
[ -r "$ITEM" ] || exit 0
[ "$(cat "$ITEM")" = 1 ] || exit 0
echo "xsc-selftest: ready"
/usr/lib/xsc/xsc-init /usr/lib/xsc/plan
echo "xsc-selftest: done"
sync
/sbin/poweroff -f
