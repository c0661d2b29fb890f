#!/bin/sh
# make check-guest: see tests/guest/run.py.  Skips (exit 0) without a
# vfio-user capable QEMU in IOVD_QEMU.
exec python3 "$(dirname "$0")/run.py" "$@"
