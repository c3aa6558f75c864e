#!/bin/busybox sh
# PID 1 of the Debian live ISO's initramfs (xsc-release, recipes/debian/live-init.sh).
# Finds the ISO by its volume label on a CD-ROM or a virtio/SATA disk, mounts its squashfs
# root read-only under a tmpfs overlay and switch_roots into Debian's /sbin/init. Everything
# it needs is built into the lean kernel (iso9660, squashfs, loop, overlay, tmpfs), so there
# are no modules and no initramfs-tools here.
/bin/busybox --install -s /bin
export PATH=/bin
LABEL=@LABEL@
# On failure: a shell for a person, but under the harness's self-test a power-off, so a
# broken ISO fails its gate at once instead of on the boot clock.
fail() {
    echo "xsc-live: error: $*"
    if [ -e /sys/firmware/qemu_fw_cfg/by_name/opt/org.xsc/selftest ]; then
        poweroff -f
    fi
    echo "xsc-live: dropping to a shell"
    exec sh
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "xsc-live: looking for the medium labelled $LABEL"
found=
tries=0
# Devices appear asynchronously (ATAPI probing under TCG takes seconds): poll for 60 s.
while [ -z "$found" ] && [ $tries -lt 60 ]; do
    for dev in /dev/sr* /dev/vd* /dev/sd*; do
        [ -b "$dev" ] || continue
        # The ISO 9660 volume id: 32 bytes at offset 40 of the primary volume descriptor
        # (sector 16), space padded. This busybox has no blkid.
        id=$(dd if="$dev" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ')
        [ "$id" = "$LABEL" ] || continue
        if mount -t iso9660 -o ro "$dev" /medium 2>/dev/null; then
            if [ -f /medium/live/filesystem.squashfs ]; then
                found=$dev
                break
            fi
            umount /medium
        fi
    done
    [ -n "$found" ] && break
    tries=$((tries + 1))
    sleep 1
done
if [ -z "$found" ]; then
    ls -l /dev/sr* /dev/vd* /dev/sd* 2>&1
    fail "no medium labelled $LABEL found"
fi
echo "xsc-live: medium $found"
mount -t squashfs -o ro,loop /medium/live/filesystem.squashfs /lower || fail "cannot mount the squashfs root"
mount -t tmpfs -o mode=0755,size=50% tmpfs /cow || fail "cannot mount the tmpfs"
mkdir -p /cow/upper /cow/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/cow/upper,workdir=/cow/work /root || fail "cannot mount the overlay"
# Keep the layers reachable from the live system (for debugging; /run is a tmpfs there).
mkdir -p /root/lib/live/medium /root/lib/live/rootfs
mount --move /medium /root/lib/live/medium
mount --move /lower /root/lib/live/rootfs
umount /proc /sys
mount --move /dev /root/dev 2>/dev/null || umount /dev
echo "xsc-live: switching to the live root"
exec switch_root /root /sbin/init
