#!/bin/sh
# `make run`: start iovd with a sensible default configuration and say how
# to attach a VMM and talk to the monitor.  Ctrl-C stops it cleanly.
set -e
IOVD=${1:-build/iovd}

if [ "$(id -u)" = 0 ]; then
    RUN_DIR=${IOVD_RUN_DIR:-/run/iovd}
else
    RUN_DIR=${IOVD_RUN_DIR:-${XDG_RUNTIME_DIR:-/tmp}/iovd}
fi
DATA_DIR=${IOVD_DATA_DIR:-/var/tmp/iovd}
mkdir -p "$RUN_DIR" "$DATA_DIR"
chmod 700 "$RUN_DIR"

has_device() { "$IOVD" -device help | grep -q "^  $1 "; }
has_option() { "$IOVD" --help | grep -q -- "^  -$1 "; }

set -- 
if has_device nvme; then
    IMG="$DATA_DIR/nvme0.img"
    [ -e "$IMG" ] || truncate -s 8G "$IMG"      # sparse raw image
    set -- "$@" -blockdev "driver=file,node-name=disk0,filename=$IMG" \
        -device "nvme,id=nvme0,drive=disk0,serial=IOVD0001,socket=$RUN_DIR/nvme0.sock"
    SOCK="$RUN_DIR/nvme0.sock"
    WHAT="an NVMe controller on $IMG (8 GiB, sparse)"
else
    set -- "$@" -device "pci-testdev,id=testdev0,socket=$RUN_DIR/testdev0.sock"
    SOCK="$RUN_DIR/testdev0.sock"
    WHAT="a pci-testdev (1b36:0005)"
fi
QMP=""
if has_option qmp; then
    QMP="$RUN_DIR/qmp.sock"
    set -- "$@" -qmp "unix:$QMP,server=on,wait=off"
fi

cat <<TXT
iovd: serving $WHAT
  vfio-user socket: $SOCK

Attach QEMU 10.1 or later (guest RAM must be shared memory):
  qemu-system-x86_64 -machine q35,memory-backend=mem \\
    -object memory-backend-memfd,id=mem,size=2G,share=on \\
    -device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"$SOCK"}}' ...
TXT
if [ -n "$QMP" ]; then
    cat <<TXT

Monitor (QMP):
  build/iovd-ctl -s $QMP query-pci
  socat - UNIX-CONNECT:$QMP     then {"execute":"qmp_capabilities"}
TXT
fi
echo
echo "Press Ctrl-C to stop."
exec "$IOVD" "$@"
