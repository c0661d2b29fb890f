#!/bin/sh
# One-node Ceph cluster for the RBD backend's tests: one monitor and one
# OSD (memstore: objects live in the OSD's RAM), run as plain processes,
# with no systemd, no /etc/ceph and nothing under /var: every file (conf,
# keyring, monitor store, logs, pid files, admin sockets) is under DIR and
# every socket is on 127.0.0.1.  It uses Debian 12's own Ceph (16.2,
# pacific):
#
#   apt-get install --no-install-recommends ceph-mon ceph-osd ceph-common
#   (and librbd-dev to build the driver; ceph-mgr only for CEPH_FIXTURE_MGR)
#
# Usage:
#   ceph-fixture.sh start DIR   DIR must be absent or empty.  Prints
#                               CEPH_CONF=DIR/ceph.conf
#                               CEPH_POOL=rbd
#                               CEPH_ID=admin              (cephx only)
#                               CEPH_KEYRING=DIR/keyring   (cephx only)
#                               CEPH_MON_HOST=v2:127.0.0.1:PORT
#                               and exits 0 once the pool takes I/O; else
#                               exits non-zero saying why on stderr, with
#                               its daemons stopped and DIR kept for the
#                               logs (stop removes it).
#   ceph-fixture.sh stop DIR    stops the daemons and removes DIR.
#
#   eval "$(tests/rbd/ceph-fixture.sh start "$dir")" && export CEPH_CONF
#   lets rbd/rados/ceph, and rados_conf_read_file(cluster, NULL), find the
#   cluster without -c.  ceph.conf names the keyring, so a client that reads
#   the conf needs no other option.
#
# Environment:
#   CEPH_FIXTURE_TIMEOUT  seconds to wait for a usable cluster (60)
#   CEPH_FIXTURE_AUTH     cephx (default) or none
#   CEPH_FIXTURE_MGR      1: also start a ceph-mgr (about 2.5 s and 300 MB
#                         more; RBD I/O does not need it, `ceph -s` PG stats
#                         and `rbd perf`/`rbd task` do)
#   CEPH_FIXTURE_OSD_MB   the OSD's capacity in MiB (1024); memstore holds
#                         every byte written in RAM, so this bounds RAM too
set -e

prog=ceph-fixture
die() {
    echo "$prog: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# The paths go into ceph.conf and into the KEY=value lines that callers
# eval: refuse anything that would need quoting in either.
case $dir in
'' | *[!A-Za-z0-9_./+-]*) die "DIR must be a plain path (letters, digits, _ . / + -): '$dir'" ;;
esac

# A caller's CEPH_ARGS (say, --id of another cluster) would be applied to
# every command below; this cluster is configured by its ceph.conf alone.
unset CEPH_ARGS

# --- stop -------------------------------------------------------------

# Print the pids of this cluster's daemons: those in DIR/run/*.pid, plus
# (for a start that was interrupted before a daemon wrote its pid file)
# any ceph-mon/ceph-osd/ceph-mgr whose command line names DIR/ceph.conf.
# Only processes whose command line has that exact path are listed, so a
# recycled pid or another cluster's daemon is never touched.
cluster_pids() {
    for p in /proc/[0-9]*; do
        [ -r "$p/cmdline" ] || continue
        args=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        case $args in
        ceph-mon\ * | ceph-osd\ * | ceph-mgr\ * | */ceph-mon\ * | */ceph-osd\ * | */ceph-mgr\ *) ;;
        *) continue ;;
        esac
        case " $args" in
        *" -c $dir/ceph.conf "*) echo "${p#/proc/}" ;;
        esac
    done
    for f in "$dir"/run/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null) || continue
        case $pid in '' | *[!0-9]*) continue ;; esac
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "-c $dir/ceph.conf "; then
            echo "$pid"
        fi
    done
}

# A killed daemon stays a zombie until PID 1 reaps it, which in a
# container may take a second or two: a zombie counts as gone.
running() {
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop_daemons SIGNAL: send SIGNAL to every daemon, wait up to 10 s, then
# SIGKILL what is left.  `stop` sends KILL straight away: the cluster is
# thrown away, and a graceful exit takes 2 s a daemon (7 s when both go at
# once: the OSD waits 5 s for the dying monitor's ack).  A failed start
# sends TERM, so the logs it keeps end with what the daemons last said.
stop_daemons() {
    pids=$(cluster_pids | sort -u)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -"$1" $pids 2>/dev/null || true
    # A stopped (SIGSTOP, debugger) daemon acts on TERM only once resumed.
    # shellcheck disable=SC2086
    kill -CONT $pids 2>/dev/null || true
    i=0
    while [ $i -lt 50 ]; do
        alive=
        for pid in $pids; do
            if running "$pid"; then
                alive="$alive $pid"
            fi
        done
        [ -n "$alive" ] || return 0
        sleep 0.2
        i=$((i + 1))
    done
    # shellcheck disable=SC2086
    kill -KILL $alive 2>/dev/null || true
    sleep 0.2
}

if [ "$cmd" = stop ]; then
    # Idempotent: a test's cleanup may run after a failed start, or twice.
    [ -e "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    # rm -rf only what this script made (or an empty directory).
    if [ ! -f "$dir/.ceph-fixture" ] && [ -n "$(ls -A "$dir")" ]; then
        die "$dir was not made by $0 start: not removing it"
    fi
    stop_daemons KILL
    rm -rf "$dir"
    exit 0
fi

[ "$cmd" = start ] || usage

# --- start: prerequisites ---------------------------------------------

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not installed: apt-get install $2"
}
pkgs="ceph-mon ceph-osd ceph-common"
need ceph-mon "$pkgs"
need monmaptool "$pkgs"
need ceph-osd "$pkgs"
need ceph "$pkgs"
need ceph-authtool "$pkgs"
need rados "$pkgs"
need rbd "$pkgs"
need timeout coreutils
need nice coreutils
need od coreutils

auth=${CEPH_FIXTURE_AUTH:-cephx}
case $auth in
cephx | none) ;;
*) die "CEPH_FIXTURE_AUTH must be cephx or none, not '$auth'" ;;
esac
with_mgr=${CEPH_FIXTURE_MGR:-0}
if [ "$with_mgr" = 1 ]; then
    need ceph-mgr "ceph-mgr"
fi
timeout_s=${CEPH_FIXTURE_TIMEOUT:-60}
osd_mb=${CEPH_FIXTURE_OSD_MB:-1024}
case $timeout_s$osd_mb in
*[!0-9]*) die "CEPH_FIXTURE_TIMEOUT and CEPH_FIXTURE_OSD_MB must be whole numbers" ;;
esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case $dir in
*[!A-Za-z0-9_./+-]*) die "DIR must be a plain path (letters, digits, _ . / + -): '$dir'" ;;
esac
if [ -n "$(ls -A "$dir")" ]; then
    die "$dir is not empty (another cluster? run: $0 stop $dir)"
fi
: >"$dir/.ceph-fixture"
mkdir "$dir/run" "$dir/log" "$dir/crash" "$dir/mon.a" "$dir/osd.0"
conf=$dir/ceph.conf
keyring=$dir/keyring
pool=rbd

# From here on, a failure stops what was started, so no daemon outlives a
# start that did not succeed; DIR stays, for its logs.
ok=0
on_exit() {
    if [ "$ok" != 1 ]; then
        stop_daemons TERM
        echo "$prog: logs are in $dir/log; '$0 stop $dir' removes them" >&2
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

deadline=$(($(date +%s) + timeout_s))
remaining() {
    r=$((deadline - $(date +%s)))
    [ $r -gt 0 ] || r=1
    echo $r
}

# fail WHAT LOG: say what failed and show the end of the log that says why.
fail() {
    echo "$prog: $1" >&2
    shift
    for f in "$@"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $f:" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

# Daemons run at nice 10: other builds and tests share the machine.
# Every command that talks to the cluster (a daemon's start waits for the
# monitor too) runs for no longer than what is left of the time budget: a
# client otherwise waits 300 s for a monitor that does not answer.  A
# daemon whose start is cut short is stopped by the EXIT trap.
bounded() {
    timeout "$(remaining)" "$@"
}
# why STATUS: the reason to add to a failure message, if timeout gave it.
why() {
    if [ "$1" = 124 ]; then
        echo " (timed out: CEPH_FIXTURE_TIMEOUT=${timeout_s})"
    fi
}
cephcmd() {
    bounded ceph -c "$conf" --connect-timeout 10 "$@"
}
clicmd() {
    tool=$1
    shift
    bounded "$tool" -c "$conf" "$@"
}

uuid() {
    cat /proc/sys/kernel/random/uuid
}

fsid=$(uuid)
osd_uuid=$(uuid)

# --- keyring -----------------------------------------------------------

# One keyring holds every entity's key; the monitor imports them all at
# mkfs, and ceph.conf points every daemon and client at it, so no key has
# to be registered afterwards.
if [ "$auth" = cephx ]; then
    {
        ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' &&
        ceph-authtool "$keyring" --gen-key -n client.admin \
            --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' &&
        ceph-authtool "$keyring" --gen-key -n osd.0 \
            --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' &&
        ceph-authtool "$keyring" --gen-key -n mgr.x \
            --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
    } >"$dir/log/authtool.log" 2>&1 || fail "ceph-authtool failed" "$dir/log/authtool.log"
fi

# --- ceph.conf ---------------------------------------------------------

write_conf() {
    cat >"$conf" <<EOF
# Written by tests/rbd/ceph-fixture.sh: a throw-away one-node cluster.
[global]
fsid = $fsid
# msgr2 only, loopback only.
mon host = v2:127.0.0.1:$1
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
# Every client here is 16.x: no need for the old insecure reclaim.
auth allow insecure global id reclaim = false
keyring = $keyring
# Nothing under /var or /etc.
run dir = $dir/run
crash dir = $dir/crash
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
mon data = $dir/\$name
osd data = $dir/\$name
mgr data = $dir/\$name
# One OSD: one copy, placed on an OSD rather than a host, 8 PGs a pool.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
# Health checks that are about production, not about this cluster: one
# copy is what is wanted, the disk is shared with everything else, and a
# ceph-mgr is only started on request (without one the monitor would warn
# "no active mgr" 2 minutes after mkfs).
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon mgr mkfs grace = 86400
# A client of a cluster that is gone fails in 30 s, not 300 s.
client mount timeout = 30

[mon]
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
# A port taken by someone else fails at once (default: 3 tries, 5 s
# apart); start then tries another port.
ms bind retry count = 1
# Each map change (pool create, the OSD's crush location and device class
# at boot, rbd pool init's application tag and snapshot check) waits for
# the next proposal; the default 1 s between proposals made start ~5 s
# slower.
paxos propose interval = 0.1

[osd]
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
# Objects in RAM: no disk image to allocate and start takes ~2 s.
osd objectstore = memstore
memstore device bytes = $((osd_mb * 1024 * 1024))

[mgr]
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok

[client]
# One socket per client process: several clients may run at once.
admin socket = $dir/run/\$name.\$pid.asok
# A test whose cluster died fails in 30 s instead of hanging: by default
# a librados operation waits for ever.
rados mon op timeout = 30
rados osd op timeout = 30
EOF
}

# --- monitor -----------------------------------------------------------

# The port is picked at random below the kernel's ephemeral range (32768-)
# and away from the OSD's 6800-7300, so that concurrent clusters, and
# outgoing connections, rarely want the same one; if it is taken anyway,
# the monitor fails to bind at once and another port is tried.
random_port() {
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' \n')
    echo $((20000 + n % 12000))
}

tries=0
while :; do
    tries=$((tries + 1))
    port=$(random_port)
    write_conf "$port"
    rm -rf "$dir/mon.a" "$dir/run/monmap"
    mkdir "$dir/mon.a"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" \
        --set-min-mon-release 16 "$dir/run/monmap" >"$dir/log/monmaptool.log" 2>&1 ||
        fail "monmaptool failed" "$dir/log/monmaptool.log"
    bounded nice -n 10 ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/run/monmap" \
        </dev/null >"$dir/log/mon.a.mkfs.log" 2>&1 ||
        fail "ceph-mon --mkfs failed$(why $?)" "$dir/log/mon.a.mkfs.log" "$dir/log/mon.a.log"
    # ceph-mon forks; the parent exits 0 once the daemon is up and bound.
    # Its stdio goes to a file, not to our caller's $(...) pipe.
    if bounded nice -n 10 ceph-mon -c "$conf" -i a </dev/null >"$dir/log/mon.a.stderr" 2>&1; then
        break
    else
        rc=$?
    fi
    if grep -q 'Address already in use' "$dir/log/mon.a.stderr" "$dir/log/mon.a.log" 2>/dev/null &&
        [ $tries -lt 5 ]; then
        mv "$dir/log/mon.a.log" "$dir/log/mon.a.port$port.log" 2>/dev/null || true
        continue
    fi
    fail "ceph-mon did not start (port $port)$(why "$rc")" "$dir/log/mon.a.stderr" "$dir/log/mon.a.log"
done

cephcmd mon stat >"$dir/log/start.log" 2>&1 ||
    fail "ceph-mon started but does not answer on 127.0.0.1:$port$(why $?)" \
        "$dir/log/start.log" "$dir/log/mon.a.log"

# --- OSD ---------------------------------------------------------------

# Register osd.0 with the monitor, make its (in-memory) store, start it.
osd_id=$(cephcmd osd new "$osd_uuid" 2>>"$dir/log/start.log") ||
    fail "ceph osd new failed$(why $?)" "$dir/log/start.log" "$dir/log/mon.a.log"
[ "$osd_id" = 0 ] || fail "ceph osd new gave id '$osd_id', wanted 0"
bounded nice -n 10 ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
    </dev/null >"$dir/log/osd.0.mkfs.log" 2>&1 ||
    fail "ceph-osd --mkfs failed$(why $?)" "$dir/log/osd.0.mkfs.log" "$dir/log/osd.0.log"
bounded nice -n 10 ceph-osd -c "$conf" -i 0 </dev/null >"$dir/log/osd.0.stderr" 2>&1 ||
    fail "ceph-osd did not start$(why $?)" "$dir/log/osd.0.stderr" "$dir/log/osd.0.log"

if [ "$with_mgr" = 1 ]; then
    mkdir "$dir/mgr.x"
    bounded nice -n 10 ceph-mgr -c "$conf" -i x </dev/null >"$dir/log/mgr.x.stderr" 2>&1 ||
        fail "ceph-mgr did not start$(why $?)" "$dir/log/mgr.x.stderr" "$dir/log/mgr.x.log"
fi

# The OSD is usable once the monitor has marked it up (1-3 s).
while :; do
    st=$(cephcmd osd stat -f json 2>>"$dir/log/start.log") || st=
    case $st in
    *'"num_up_osds":1'*) break ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        fail "osd.0 not up after ${timeout_s}s (ceph osd stat: $st)" \
            "$dir/log/osd.0.stderr" "$dir/log/osd.0.log" "$dir/log/start.log"
    fi
    if [ -f "$dir/run/osd.0.pid" ] && ! running "$(cat "$dir/run/osd.0.pid")"; then
        fail "ceph-osd exited" "$dir/log/osd.0.stderr" "$dir/log/osd.0.log"
    fi
    sleep 0.3
done

# --- pool --------------------------------------------------------------

cephcmd osd pool create "$pool" 8 8 replicated >>"$dir/log/start.log" 2>&1 ||
    fail "ceph osd pool create $pool failed$(why $?)" "$dir/log/start.log" "$dir/log/mon.a.log"
# Tags the pool for rbd and writes its rbd metadata objects: this waits
# until the pool's PGs are active, i.e. until the OSD takes I/O.
clicmd rbd pool init "$pool" >>"$dir/log/start.log" 2>&1 ||
    fail "rbd pool init $pool failed$(why $?)" "$dir/log/start.log" "$dir/log/osd.0.log"

# Proof of I/O: an object written, read back, compared and removed.
probe=$dir/run/probe
echo "ceph-fixture probe $fsid" >"$probe.in"
{
    clicmd rados -p "$pool" put fixture-probe "$probe.in" &&
    clicmd rados -p "$pool" get fixture-probe "$probe.out" &&
    cmp "$probe.in" "$probe.out" &&
    clicmd rados -p "$pool" rm fixture-probe
} >>"$dir/log/start.log" 2>&1 || fail "I/O to pool $pool failed$(why $?)" "$dir/log/start.log" "$dir/log/osd.0.log"
rm -f "$probe.in" "$probe.out"

if [ "$with_mgr" = 1 ]; then
    while ! cephcmd mgr stat 2>>"$dir/log/start.log" | grep -q '"available": true'; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            fail "ceph-mgr not available after ${timeout_s}s" "$dir/log/mgr.x.stderr" "$dir/log/mgr.x.log"
        fi
        sleep 0.5
    done
fi

ok=1
echo "CEPH_CONF=$conf"
echo "CEPH_POOL=$pool"
if [ "$auth" = cephx ]; then
    echo "CEPH_ID=admin"
    echo "CEPH_KEYRING=$keyring"
fi
echo "CEPH_MON_HOST=v2:127.0.0.1:$port"
