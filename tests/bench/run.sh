#!/bin/sh
# make bench: run the benchmarks and write docs/performance.md.
# Environment: IOVD_BIN, BENCH_DIR (the built bench programs), BENCH_SECS
# (seconds per NVMe/virtio point, default 5), BENCH_FILE_MB (default 1024).
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IOVD=${IOVD_BIN:-$ROOT/build/iovd}
BENCH_DIR=${BENCH_DIR:-$ROOT/build/tests/bench}
SECS=${BENCH_SECS:-5}
FILE_MB=${BENCH_FILE_MB:-1024}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}
WORK=$(mktemp -d /var/tmp/iovd-bench-XXXXXX)
RAW=$WORK/results.txt
IMG=$WORK/disk.img
trap 'rc=$?; [ -n "$IOVD_PID" ] && kill "$IOVD_PID" 2>/dev/null; rm -rf "$WORK"; exit $rc' EXIT

log() { echo "bench: $*" >&2; }

# A page-cache-backed file: written once, then read into the cache.
log "preparing a $FILE_MB MiB image"
dd if=/dev/urandom of="$IMG" bs=1M count="$FILE_MB" status=none
cat "$IMG" >/dev/null

start_iovd() {
    rfd_dir=$WORK/ready
    rm -f "$WORK"/*.sock
    mkfifo "$rfd_dir.fifo" 2>/dev/null || true
    "$IOVD" "$@" -ready-fd 3 3>"$rfd_dir.fifo" 2>>"$WORK/iovd.log" &
    IOVD_PID=$!
    head -c 1 "$rfd_dir.fifo" >/dev/null
}

stop_iovd() {
    kill "$IOVD_PID" 2>/dev/null || true
    wait "$IOVD_PID" 2>/dev/null || true
    IOVD_PID=
}

host_fio() {
    # $1 rw, $2 iodepth, $3 jobs: iops and median completion latency
    fio --name=host --filename="$IMG" --ioengine=libaio --direct=0 \
        --rw="$1" --bs=4k --iodepth="$2" --numjobs="$3" --group_reporting \
        --time_based --runtime="$SECS" --size="${FILE_MB}M" \
        --output-format=json 2>/dev/null |
    python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
p50 = d["clat_ns"].get("percentile", {}).get("50.000000", 0) / 1000
print("iops=%d lat_us_p50=%d" % (d["iops"], p50))'
}

: >"$RAW"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
kernel=$(uname -r)

if [ -x "$BENCH_DIR/nvme-bench" ]; then
    for backend in file null; do
        if [ $backend = file ]; then
            bd="driver=file,node-name=d0,filename=$IMG,aio=native"
        else
            bd="driver=null,node-name=d0,size=${FILE_MB}M,read-zeroes=off"
        fi
        start_iovd -blockdev "$bd" \
            -device "nvme,id=nvme0,drive=d0,serial=BENCH,socket=$WORK/nvme.sock,max_ioqpairs=4"
        for rw in randread randwrite; do
            for qd in 1 32; do
                for nq in 1 4; do
                    line=$("$BENCH_DIR/nvme-bench" -s "$WORK/nvme.sock" \
                        -p "$IOVD_PID" -w $rw -q $qd -n $nq -t "$SECS")
                    echo "nvme $backend $line" >>"$RAW"
                    log "nvme $backend $line"
                done
            done
        done
        stop_iovd
    done
    for rw in randread randwrite; do
        for qd in 1 32; do
            line=$(host_fio $rw $qd 1)
            echo "fio $rw qd=$qd jobs=1 $line" >>"$RAW"
            log "fio $rw qd=$qd $line"
        done
    done
fi

if [ -x "$BENCH_DIR/virtio-blk-bench" ]; then
    for backend in file null; do
        if [ $backend = file ]; then
            bd="driver=file,node-name=d0,filename=$IMG,aio=native"
        else
            bd="driver=null,node-name=d0,size=${FILE_MB}M,read-zeroes=off"
        fi
        start_iovd -blockdev "$bd" \
            -device "virtio-blk-pci,id=vb0,drive=d0,socket=$WORK/vb.sock"
        for rw in randread randwrite; do
            for qd in 1 32; do
                line=$("$BENCH_DIR/virtio-blk-bench" -s "$WORK/vb.sock" \
                    -p "$IOVD_PID" -w $rw -q $qd -t "$SECS")
                echo "virtio-blk $backend $line" >>"$RAW"
                log "virtio-blk $backend $line"
            done
        done
        stop_iovd
    done
fi

if [ -x "$BENCH_DIR/qmp-bench" ]; then
    line=$(IOVD_BIN="$IOVD" "$BENCH_DIR/qmp-bench" 2 2>&1 | tail -1)
    echo "qmp $line" >>"$RAW"
    log "qmp $line"
fi

for b in "$BENCH_DIR"/net-*-bench; do
    [ -x "$b" ] || continue
    line=$("$b" --iovd "$IOVD" 2>&1 | tail -5)
    echo "$line" | sed "s|^|net |" >>"$RAW"
    log "$line"
done

python3 "$ROOT/tests/bench/report.py" "$RAW" "$OUT" "$cpu" "$kernel" "$SECS" "$FILE_MB"
log "wrote $OUT"
