#!/bin/sh
# Install the Debian 12 packages iovd needs to build and test, only those
# that are missing, saying what it installs.  Needs root (or sudo) when
# something is missing; does nothing otherwise.
set -e

# build + required libraries
PKGS="build-essential pkg-config python3 libglib2.0-dev libjson-c-dev \
libaio-dev libslirp-dev libseccomp-dev zlib1g-dev check"
# optional backends (detected by configure) and test tools
PKGS="$PKGS liburing-dev libnbd-dev nbdkit qemu-utils fio iproute2 socat \
      python3-matplotlib"
# the rbd driver (librbd) and its tests' one-node cluster (tests/rbd)
PKGS="$PKGS librbd-dev ceph-mon ceph-osd ceph-common"
# the fuzz targets (libFuzzer)
PKGS="$PKGS clang"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: not root and no sudo; install these yourself:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
