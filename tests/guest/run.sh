#!/bin/sh
# make check-guest: see tests/guest/run.py.  Skips (exit 0) without a
# vfio-user capable QEMU in IOVD_QEMU.
#
# Without IOVD_GUEST_IOTHREAD / IOVD_GUEST_SHARED set, the guest boots once
# per configuration: every device on the main loop, on iothreads that
# busy-poll (NVMe doorbells in guest-mapped memory, polled virtio rings),
# and on iothreads that do not; each with guest RAM shared with iovd and
# private to QEMU (every DMA a message).  Then live upgrade
# (IOVD_GUEST_UPGRADE=3: iovd replaced three times under fio and TCP
# traffic), devices on the main loop and on polling iothreads.
RUN="python3 $(dirname "$0")/run.py"
if [ -n "$IOVD_GUEST_IOTHREAD$IOVD_GUEST_SHARED$IOVD_GUEST_UPGRADE" ] ||
   [ -z "$IOVD_QEMU" ]; then
    exec $RUN "$@"
fi
failed=
ran=0
log=$(mktemp)
trap 'rm -f "$log" "$log.rc"' EXIT
# one configuration: its name, then its environment
run_config() {
    name=$1
    shift
    echo "check-guest: === $name"
    # live output, and its status
    { env "$@" $RUN 2>&1; echo $? >"$log.rc"; } | tee "$log"
    [ "$(cat "$log.rc")" = 0 ] || failed="$failed [$name]"
    grep -q '^SKIP: check-guest:' "$log" || ran=$((ran + 1))
}
for loop in main poll sleep; do
    for shared in 1 0; do
        case $loop in
        main) threads= poll= ;;
        poll) threads=2 poll= ;;
        sleep) threads=2 poll=0 ;;
        esac
        run_config "loop=$loop shared-ram=$shared" \
            IOVD_GUEST_IOTHREAD=$threads IOVD_GUEST_POLL_MAX_NS=$poll \
            IOVD_GUEST_SHARED=$shared
    done
done
run_config "upgrade loop=main" IOVD_GUEST_UPGRADE=3
run_config "upgrade loop=poll" IOVD_GUEST_UPGRADE=3 IOVD_GUEST_IOTHREAD=2
if [ -n "$failed" ]; then
    echo "check-guest: FAILED:$failed"
    exit 1
fi
if [ $ran = 0 ]; then
    echo "check-guest: every configuration skipped (see SKIP above)"
else
    echo "check-guest: all $ran configurations passed"
fi
