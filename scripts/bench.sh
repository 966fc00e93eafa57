#!/usr/bin/env bash
# Benchmarks of s3docs on this machine, against baselines measured in the
# same run. The machine is shared and noisy: compare the ratios.
#
# Usage: scripts/bench.sh [read [SIZE_MIB [RUNS]] | parts [RUNS]]
#        (no argument: both, with the defaults)
#
# read (default 1024 MiB, 3 runs): sequential read of one object
#   baseline  curl GET of the whole object to /dev/null
#   cold      first read through the mount: every chunk fetched from S3
#   warm      read again after dropping the page cache: chunks from disk
#   and the daemon's peak RSS.
# parts (default 3 runs): a generated ~300 MB, 3,200-page PDF
#   baseline  reading the PDF through the mount (fetching it)
#   first     stat of its first part on a fresh mount (fetch + parse + extract)
#   hot       first part when its chunks are already cached (parse + extract)
#   later     another part after that (extract only)
#   and the peak RSS of the daemon and of the split worker.
#
# It never gates CI; it is for people.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

mode=${1:-all}
case $mode in
read) size_mib=${2:-1024} runs=${3:-3} ;;
parts) runs=${2:-3} size_mib=1024 ;;
all) size_mib=1024 runs=3 ;;
*) die "usage: scripts/bench.sh [read [SIZE_MIB [RUNS]] | parts [RUNS]]" ;;
esac
ensure_deps
[[ $(id -u) -eq 0 ]] || die "bench.sh drops the page cache: run it as root"

work=$(mktemp -d /tmp/s3docs-bench.XXXXXX)
daemon_pid="" gw_pid="" mnt="$work/mnt"
cleanup() {
	if [[ -n $daemon_pid ]]; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	mountpoint -q "$mnt" 2>/dev/null && umount -l "$mnt"
	[[ -n $gw_pid ]] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log "building s3docs"
go build -o "$work/s3docs" ./cmd/s3docs

port=$(free_port)
endpoint="http://127.0.0.1:$port"
mkdir -p "$work/root/bench" "$mnt" "$work/cache"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
versitygw --port "127.0.0.1:$port" --access bench --secret benchsecret --keep-alive posix "$work/root" \
	>"$work/versitygw.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "$endpoint" && break; sleep 0.1; done

s3curl() {
	curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:benchsecret \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }
# mbps SECONDS prints MB/s (10^6 bytes) of the object.
mbps() { awk -v s="$1" -v b="$((size_mib << 20))" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
seconds() { # seconds CMD... : wall time of CMD
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
read_mount() { dd if="$mnt/object.pdf" of=/dev/null bs=1M status=none; }
get_curl() { s3curl "$endpoint/bench/object.pdf" -o /dev/null; }

mount_daemon() {
	: >"$work/s3docs.log"
	"$work/s3docs" mount --endpoint-url "$endpoint" --force-path-style --cache-dir "$work/cache" \
		--cache-size 4GiB "s3://bench" "$mnt" 2>>"$work/s3docs.log" &
	daemon_pid=$!
	for _ in $(seq 100); do mountpoint -q "$mnt" && return; sleep 0.1; done
	tail "$work/s3docs.log" >&2
	die "mount did not come up"
}
unmount_daemon() {
	kill -TERM "$daemon_pid"
	wait "$daemon_pid"
	daemon_pid=""
}

bench_read() {
	log "read: uploading a $size_mib MiB object"
	head -c "$((size_mib << 20))" /dev/urandom >"$work/object.bin"
	s3curl -T "$work/object.bin" "$endpoint/bench/object.pdf" -o /dev/null
	local want
	want=$(sha256sum <"$work/object.bin" | cut -d' ' -f1)
	rm -f "$work/object.bin"
	printf '%-4s %12s %12s %12s %10s %10s %12s\n' run "curl MB/s" "cold MB/s" "warm MB/s" cold/curl warm/curl "peak RSS MiB"
	for run in $(seq "$runs"); do
		drop_caches
		t_curl=$(seconds get_curl)
		rm -rf "$work/cache"/*
		mount_daemon
		drop_caches
		t_cold=$(seconds read_mount)
		drop_caches
		t_warm=$(seconds read_mount)
		got=$(sha256sum <"$mnt/object.pdf" | cut -d' ' -f1)
		[[ $got == "$want" ]] || die "content through the mount differs"
		rss=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$daemon_pid/status")
		unmount_daemon
		printf '%-4s %12s %12s %12s %10s %10s %12s\n' "$run" "$(mbps "$t_curl")" "$(mbps "$t_cold")" "$(mbps "$t_warm")" \
			"$(awk -v a="$t_curl" -v b="$t_cold" 'BEGIN { printf "%.2f", a / b }')" \
			"$(awk -v a="$t_curl" -v b="$t_warm" 'BEGIN { printf "%.2f", a / b }')" "$rss"
	done
}

bench_parts() {
	log "parts: generating and uploading a 3,200-page PDF of about 300 MB"
	go run ./internal/tools/mkpdfs -out "$work" -one big.pdf -pages 3200 -pad 300000000 >/dev/null
	s3curl -T "$work/big.pdf" "$endpoint/bench/big.pdf" -o /dev/null
	rm -f "$work/big.pdf"
	local dir="$mnt/.parts/big.pdf"
	printf '%-4s %10s %10s %10s %10s %14s %14s\n' run "read s" "first s" "hot s" "later s" "daemon RSS MiB" "worker RSS MiB"
	for run in $(seq "$runs"); do
		rm -rf "$work/cache"/*
		mount_daemon
		drop_caches
		t_first=$(seconds stat "$dir/pages-0001-0050.pdf")
		unmount_daemon
		rm -rf "$work/cache"/*
		mount_daemon
		t_read=$(seconds cat "$mnt/big.pdf")
		t_hot=$(seconds stat "$dir/pages-0001-0050.pdf")
		t_later=$(seconds stat "$dir/pages-1601-1650.pdf")
		pdfinfo "$dir/pages-1601-1650.pdf" | grep -q '^Pages: *50$' || die "part has the wrong page count"
		rss=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$daemon_pid/status")
		unmount_daemon
		wrss=$(grep -o 'peak_rss=[0-9]*' "$work/s3docs.log" | cut -d= -f2 | sort -n | tail -1)
		printf '%-4s %10s %10s %10s %10s %14s %14s\n' "$run" "$t_read" "$t_first" "$t_hot" "$t_later" "$rss" "$((wrss >> 20))"
	done
}

case $mode in
read) bench_read ;;
parts) bench_parts ;;
all) bench_read && bench_parts ;;
esac
