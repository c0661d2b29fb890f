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
ran=0
log=$(mktemp)
trap 'rm -f "$log" "$log.rc"' EXIT
for loop in main poll sleep; do
    for shared in 1 0; do
        case $loop in
        main) threads= poll= ;;
        poll) threads=2 poll= ;;
        sleep) threads=2 poll=0 ;;
        esac
        name="loop=$loop shared-ram=$shared"
        echo "check-guest: === $name"
        # live output, and its status
        { IOVD_GUEST_IOTHREAD=$threads IOVD_GUEST_POLL_MAX_NS=$poll \
          IOVD_GUEST_SHARED=$shared $RUN "$@" 2>&1; echo $? >"$log.rc"; } |
            tee "$log"
        [ "$(cat "$log.rc")" = 0 ] || failed="$failed [$name]"
        grep -q '^SKIP: check-guest:' "$log" || ran=$((ran + 1))
    done
done
if [ -n "$failed" ]; then
    echo "check-guest: FAILED:$failed"
    exit 1
fi
if [ $ran = 0 ]; then
    echo "check-guest: every configuration skipped (see SKIP above)"
else
    echo "check-guest: all $ran configurations passed"
fi
