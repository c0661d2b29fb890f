#!/bin/sh
# Build the test guest from Debian 12 packages only: the kernel of
# linux-image-amd64, its nvme / virtio / e1000 modules with their
# dependencies, busybox-static, fio and its libraries, and tests/guest/init
# as /init.  Output: $OUT/vmlinuz and $OUT/initramfs.cpio.gz.
set -e
OUT=${1:?usage: mkguest.sh OUTDIR}
SRC=$(cd "$(dirname "$0")" && pwd)

need=""
for p in linux-image-amd64 busybox-static fio cpio kmod; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        need="$need $p"
done
if [ -n "$need" ]; then
    echo "mkguest: installing:$need"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

KVER=$(ls /lib/modules | sort -V | tail -1)
KIMG=/boot/vmlinuz-$KVER
[ -r "$KIMG" ] || { echo "mkguest: no kernel image $KIMG" >&2; exit 1; }

mkdir -p "$OUT"
STAMP="$OUT/.stamp"
# Rebuild only when an input changed.
if [ -f "$STAMP" ] && [ "$OUT/initramfs.cpio.gz" -nt "$SRC/init" ] &&
   [ "$OUT/initramfs.cpio.gz" -nt "$SRC/udhcpc.script" ] &&
   [ "$OUT/initramfs.cpio.gz" -nt "$SRC/mkguest.sh" ] &&
   [ "$(cat "$STAMP")" = "$KVER" ]; then
    exit 0
fi

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/lib/modules" "$ROOT/dev" \
         "$ROOT/proc" "$ROOT/sys" "$ROOT/tmp" "$ROOT/etc" "$ROOT/usr/bin" \
         "$ROOT/etc/udhcpc"
cp /bin/busybox "$ROOT/bin/busybox"
for app in $("$ROOT/bin/busybox" --list); do
    [ "$app" = busybox ] || ln -sf busybox "$ROOT/bin/$app"
done

# fio and every library it loads
cp "$(command -v fio)" "$ROOT/usr/bin/fio"
ldd "$(command -v fio)" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' |
while read -r lib; do
    [ -f "$lib" ] || continue
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
done

# modules in load order (dependencies first)
MODDIR=/lib/modules/$KVER
: >"$ROOT/lib/modules/load-order"
for m in nvme virtio_pci virtio_blk virtio_net e1000; do
    modprobe -S "$KVER" --show-depends "$m" 2>/dev/null | awk '/^insmod/ { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    case "$ko" in
    *.ko.xz) xz -dc "$ko" >"$ROOT/lib/modules/$(basename "$ko" .xz)" ;;
    *.ko.zst) zstd -qdc "$ko" >"$ROOT/lib/modules/$(basename "$ko" .zst)" ;;
    *) cp "$ko" "$ROOT/lib/modules/" ;;
    esac
    basename "$ko" | sed 's/\.xz$//; s/\.zst$//' >>"$ROOT/lib/modules/load-order"
done

cp "$SRC/init" "$ROOT/init"
chmod 755 "$ROOT/init"
# Debian's busybox udhcpc runs /etc/udhcpc/default.script.
cp "$SRC/udhcpc.script" "$ROOT/etc/udhcpc/default.script"
chmod 755 "$ROOT/etc/udhcpc/default.script"

(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/initramfs.cpio.gz"
cp "$KIMG" "$OUT/vmlinuz"
echo "$KVER" >"$STAMP"
echo "mkguest: $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1)) kernel $KVER"
