#!/bin/sh
# make check-guest: see tests/guest/run.py.  Skips (exit 0) without a
# vfio-user capable QEMU in IOVD_QEMU.
#
# Without IOVD_GUEST_IOTHREAD / IOVD_GUEST_SHARED set, the guest boots once
# per configuration: every device on the main loop, on iothreads that
# busy-poll (NVMe doorbells in guest-mapped memory, polled virtio rings),
# and on iothreads that do not; each with guest RAM shared with iovd and
# private to QEMU (every DMA a message).
RUN="python3 $(dirname "$0")/run.py"
if [ -n "$IOVD_GUEST_IOTHREAD$IOVD_GUEST_SHARED" ] || [ -z "$IOVD_QEMU" ]; then
    exec $RUN "$@"
fi
failed=
for loop in main poll sleep; do
    for shared in 1 0; do
        case $loop in
        main) threads= poll= ;;
        poll) threads=2 poll= ;;
        sleep) threads=2 poll=0 ;;
        esac
        name="loop=$loop shared-ram=$shared"
        echo "check-guest: === $name"
        if ! IOVD_GUEST_IOTHREAD=$threads IOVD_GUEST_POLL_MAX_NS=$poll \
             IOVD_GUEST_SHARED=$shared $RUN "$@"; then
            failed="$failed [$name]"
        fi
    done
done
if [ -n "$failed" ]; then
    echo "check-guest: FAILED:$failed"
    exit 1
fi
echo "check-guest: all configurations passed"
