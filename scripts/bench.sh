#!/usr/bin/env bash
# Side-by-side benchmark of s3docs against s3fs (with use_cache) and
# `rclone mount --vfs-cache-mode full`, and against the limits measured in the
# same run: a plain `curl --aws-sigv4` GET and the local disk. The machine is
# shared and noisy: compare the ratios, not the absolute figures.
#
# Usage: scripts/bench.sh [--size-mb N] [--out FILE] [--only LIST] [--small N] [--big N]
#                         [--fleet N] [--fleet-rate R] [--fleet-status S] [--baseline REV] [--rounds N] [MODE]
#
#   MODE       all (default): every figure below but 10 and 11, every system
#              read [SIZE_MB]: figures 1, 2 and 7 only (sequential reads)
#              parts: figure 8 only (s3docs)
#              listing: figures 6 and 9 (listings and lookups)
#              million: figure 10 only (s3docs; minutes: makes --big objects)
#              fleet: figure 11 only (a fleet under throttling)
#   --size-mb  size of the object read in figures 1-5, 7 and 11 (default 1024;
#              128 in mode fleet)
#   --out      also write the results as Markdown to FILE
#   --only     comma-separated subset of s3docs,s3fs,rclone,curl,local
#   --small    objects in the large listing of figure 6 (default 100000)
#   --big      objects of figure 10, in directories of 1,000 (default 1000000)
#   --fleet    mounts of each system in figure 11 (default 8)
#   --fleet-rate    requests a second the store lets through in figure 11 (default 8)
#   --fleet-status  its answer to the rest: 503 (SlowDown, default) or 429
#   --baseline also measure figures 1, 2 and 7 with s3docs built from git
#              revision REV ("base"), back to back with the code as it is
#   --rounds   rounds of the side-by-side warm and cold figures (default 3)
#
# Everything runs against versitygw on loopback behind a counting proxy
# (scripts/bench, `bench proxy`): every client, curl included, goes through
# it, and it counts object GETs and the body bytes they serve. Each cold
# figure starts from a fresh mount with an empty cache and the page cache
# dropped (echo 3 >/proc/sys/vm/drop_caches).
#
# The figures (columns of the table):
#   1 cold sequential read MB/s of one object (dd bs=1M); curl: one plain GET
#   2 warm sequential read MB/s: read again after dropping the page cache, so
#     from the daemon's disk cache; local: cat of the same bytes from disk.
#     s3docs with FUSE passthrough (the default; the kernel reads the cache's
#     file) and again, on a mount of its own, with --passthrough=off. Then
#     --rounds rounds of a warm `cat` through the mount, each right after a `cat`
#     of the local file (the page cache dropped before each): the median of
#     their ratios (the machine is shared: its disk's speed moves by 2x
#     within a minute, so only figures taken side by side compare), and the
#     median of the daemon's CPU seconds (user + system) per warm read
#     With --baseline: --rounds rounds of cold reads, s3docs and the
#     baseline in turn, each on a fresh mount: their medians
#   3 time to first byte: open + 1-byte read of a cold object; curl: a
#     ranged GET of byte 0 (time_starttransfer); local: the file on disk
#   4 200 random 256 KiB reads of a cold object (fio randread psync,
#     randrepeat=1): MB/s and MB fetched from S3; curl: 200 ranged GETs on
#     one connection
#   5 two concurrent sequential readers of one cold object: bytes fetched /
#     object size (curl: two plain GETs)
#   6 `ls -l` of 1,000 and of 100,000 entries on a fresh mount; curl:
#     ListObjectsV2 pages; local: ls -l of the server's directory
#   7 daemon peak RSS (VmHWM, MiB): of the mount that streamed the object
#     (figures 1 and 2), and the largest of all the system's mounts; and
#     bytes fetched / bytes read for the cold sequential read
#   8 .parts of a generated 1 GiB, 3,000-page PDF (every page with a 350 KB
#     image of its own, its dictionary beside it): on a fresh mount each, the
#     page count (user.s3docs.pages) and pages 2001-2050 under .parts/, with
#     the bytes fetched, the time and the split worker's peak RSS; then a
#     later part of pages already fetched (2011-2040) and one elsewhere
#     (1601-1650). Beside it, on the same file through a fresh
#     s3docs mount (--read-ahead 0, so bytes fetched are the bytes read):
#     `qpdf --show-npages` and `qpdf --empty --pages`, `mutool show
#     .../Pages/Count` and `mutool merge`, with their own peak RSS
#     (/usr/bin/time)
#   9 cold stat of one file in the large prefix of figure 6 (its directory
#     looked up first): ms and requests; curl: one HEAD of the same key
#  10 s3docs only, mode million: `find -type f` over --big objects (1,000 per
#     directory) on a fresh mount, and the daemon's peak RSS; local: find
#     over the server's directory
#  11 mode fleet (issue 19): --fleet mounts of each system, each with its own
#     cache, `sha256sum` the same cold object at once while the proxy lets
#     --fleet-rate requests a second through (every kind) and answers the
#     rest --fleet-status: reads right, errors, wall time against the ideal
#     (the GETs needed, one per 8 MiB per mount, at --fleet-rate), and the
#     requests sent (throttled ones included) against the GETs needed
#
# It never gates CI; it is for people. Needs root (drop_caches, mounts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

usage() {
	sed -n '7,27p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

size_mb=1024 size_set="" out="" only="s3docs,s3fs,rclone,curl,local" small_n=100000 mode=all big_n=1000000
fleet_n=8 fleet_rate=8 fleet_status=503 baseline="" rounds=3
while (($#)); do
	case $1 in
	--size-mb) size_mb=${2:?} size_set=1; shift 2 ;;
	--size-mb=*) size_mb=${1#*=} size_set=1; shift ;;
	--fleet) fleet_n=${2:?}; shift 2 ;;
	--fleet=*) fleet_n=${1#*=}; shift ;;
	--fleet-rate) fleet_rate=${2:?}; shift 2 ;;
	--fleet-rate=*) fleet_rate=${1#*=}; shift ;;
	--fleet-status) fleet_status=${2:?}; shift 2 ;;
	--fleet-status=*) fleet_status=${1#*=}; shift ;;
	--out) out=${2:?}; shift 2 ;;
	--out=*) out=${1#*=}; shift ;;
	--only) only=${2:?}; shift 2 ;;
	--only=*) only=${1#*=}; shift ;;
	--small) small_n=${2:?}; shift 2 ;;
	--small=*) small_n=${1#*=}; shift ;;
	--big) big_n=${2:?}; shift 2 ;;
	--big=*) big_n=${1#*=}; shift ;;
	--baseline) baseline=${2:?}; shift 2 ;;
	--baseline=*) baseline=${1#*=}; shift ;;
	--rounds) rounds=${2:?}; shift 2 ;;
	--rounds=*) rounds=${1#*=}; shift ;;
	-h | --help) usage ;;
	all | parts | listing | million | fleet) mode=$1; shift ;;
	read)
		mode="read"
		shift
		if [[ ${1:-} =~ ^[0-9]+$ ]]; then size_mb=$1; shift; fi
		if [[ ${1:-} =~ ^[0-9]+$ ]]; then log "RUNS is no longer supported: one run"; shift; fi
		;;
	*) usage ;;
	esac
done
if [[ $mode == fleet && -z $size_set ]]; then size_mb=128; fi
[[ $size_mb =~ ^[0-9]+$ && $size_mb -gt 0 ]] || die "--size-mb must be a positive integer"
[[ $fleet_n =~ ^[0-9]+$ && $fleet_n -gt 0 ]] || die "--fleet must be a positive integer"
[[ $fleet_rate =~ ^[0-9]+$ && $fleet_rate -gt 0 ]] || die "--fleet-rate must be a positive integer"
[[ $fleet_status == 503 || $fleet_status == 429 ]] || die "--fleet-status must be 503 or 429"
[[ $small_n =~ ^[0-9]+$ && $small_n -gt 0 ]] || die "--small must be a positive integer"
[[ $big_n =~ ^[0-9]+$ && $big_n -ge 1000 ]] || die "--big must be an integer of at least 1000"
[[ $rounds =~ ^[0-9]+$ && $rounds -gt 0 ]] || die "--rounds must be a positive integer"
if [[ -n $out ]]; then
	out_dir=$(dirname "$out")
	[[ -d $out_dir ]] || die "--out: no directory $out_dir"
	out="$(cd "$out_dir" && pwd)/$(basename "$out")"
fi
want() { [[ ",$only," == *",$1,"* ]]; }
fig() { # fig N: is figure N part of this mode?
	case $mode in
	all) [[ $1 != 10 && $1 != 11 ]] ;;
	read) [[ $1 == 1 || $1 == 2 || $1 == 7 ]] ;;
	parts) [[ $1 == 8 ]] ;;
	listing) [[ $1 == 6 || $1 == 9 ]] ;;
	million) [[ $1 == 10 ]] ;;
	fleet) [[ $1 == 11 ]] ;;
	esac
}
systems=()
for s in s3docs s3fs rclone; do want "$s" && systems+=("$s"); done
# s3docs-nopt: s3docs with --passthrough=off, for figures 1, 2 and 7; base:
# s3docs built from --baseline, for the same figures.
seq_extra=()
if want s3docs && fig 1; then
	seq_extra+=(s3docs-nopt)
	[[ -z $baseline ]] || seq_extra+=(base)
fi
[[ $mode != parts ]] || want s3docs || die "parts measures s3docs only: --only must include it"
[[ $mode != million ]] || want s3docs || die "million measures s3docs only: --only must include it"

[[ $(id -u) -eq 0 ]] || die "bench.sh drops the page cache and mounts: run it as root"
ensure_bench_deps
[[ -w /proc/sys/vm/drop_caches ]] || die "cannot write /proc/sys/vm/drop_caches"

started=$(date +%s)
work=$(mktemp -d /tmp/s3docs-bench.XXXXXX)
mnt="$work/mnt"
gw_pid="" px_pid="" fig_pid=""

# force_unmount ends whatever mount is left: the daemon by its pid, the
# mount point lazily.
force_unmount() {
	local pid=""
	[[ -f $work/mount.pid ]] && pid=$(<"$work/mount.pid")
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$work/mount.pid"
	if grep -qs " $mnt " /proc/mounts; then umount -l "$mnt" 2>/dev/null || true; fi
}
# fleet_unmount ends the mounts of figure 11 ($work/fleet.mounts: one
# "SYS PID MOUNTPOINT" line each): s3docs by SIGTERM, the others by umount,
# then whatever is left by SIGKILL and a lazy unmount.
fleet_unmount() {
	local sys pid mp
	[[ -f $work/fleet.mounts ]] || return 0
	while read -r sys pid mp; do
		if [[ $sys == s3docs ]]; then
			kill -TERM "$pid" 2>/dev/null || true
		else
			umount "$mp" 2>/dev/null || true
		fi
	done <"$work/fleet.mounts"
	while read -r sys pid mp; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		if grep -qs " $mp " /proc/mounts; then umount -l "$mp" 2>/dev/null || true; fi
	done <"$work/fleet.mounts"
	rm -f "$work/fleet.mounts"
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pids
	if [[ -n $fig_pid ]]; then
		# The figure's commands (dd, fio, ls, the daemon) by parent pid.
		pkill -TERM -P "$fig_pid" 2>/dev/null || true
	fi
	pids=$(jobs -pr)
	# shellcheck disable=SC2086 # one pid per word
	[[ -z $pids ]] || kill $pids 2>/dev/null || true
	force_unmount
	fleet_unmount
	for p in "$px_pid" "$gw_pid"; do
		[[ -n $p ]] || continue
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- results: KEY=VALUE lines in a file, so that figures can run in subshells
results="$work/results"
: >"$results"
put() { printf '%s=%s\n' "$1" "$2" >>"$results"; }
get() { awk -F= -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$results"; }
getn() { local v; v=$(get "$1"); printf '%s' "${v:-0}"; } # a count, 0 if missing
# Notes go to a file too: a figure runs in a subshell, whose variables die with it.
: >"$work/notes"
note() { log "NOTE: $*"; printf -- '- %s\n' "$*" >>"$work/notes"; }

# run_fig NAME CMD...: runs one figure in a subshell under set -e; a failure
# is noted (with the tail of the log) and the run goes on.
run_fig() {
	local name=$1 rc
	shift
	set +e
	# In the background and waited for, so that a signal to this script
	# runs its trap at once (cleanup then ends the figure).
	(
		set -e
		"$@"
	) &
	fig_pid=$!
	wait "$fig_pid"
	rc=$?
	fig_pid=""
	set -e
	if ((rc != 0)); then
		note "$name failed (exit $rc)"
		force_unmount
	fi
	return 0
}

# --- tools
log "building s3docs and the bench helper"
go build -o "$work/s3docs" ./cmd/s3docs
go build -o "$work/bench" ./scripts/bench
if [[ -n $baseline ]]; then
	log "building s3docs at $baseline (the baseline)"
	mkdir -p "$work/base-src"
	git archive "$baseline" | tar -x -C "$work/base-src"
	(cd "$work/base-src" && go build -o "$work/s3docs-base" ./cmd/s3docs)
	rm -rf "$work/base-src"
fi

drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
seconds() { # seconds CMD...: wall time of CMD, output discarded
	local t0
	t0=$(now)
	"$@" >/dev/null
	elapsed "$t0"
}
calc() { awk "BEGIN { printf $1 }"; } # calc 'FMT, EXPR...'
size_bytes=$((size_mb << 20))
mbps() { calc "\"%.0f\", $1 / $2 / 1e6"; } # mbps BYTES SECONDS (MB = 10^6 bytes)

# --- S3 server and counting proxy
key=bench secret=benchsecret0123456789
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_REGION=us-east-1
root="$work/root"
mkdir -p "$root/bench" "$mnt" "$work/log"
gw_port=$(free_port)
versitygw --port "127.0.0.1:$gw_port" --access "$key" --secret "$secret" --keep-alive posix "$root" \
	>"$work/log/versitygw.log" 2>&1 &
gw_pid=$!
px_port=$(free_port)
"$work/bench" proxy -listen "127.0.0.1:$px_port" -target "http://127.0.0.1:$gw_port" >"$work/log/proxy.log" 2>&1 &
px_pid=$!
endpoint="http://127.0.0.1:$px_port"
for _ in $(seq 200); do
	curl -s -o /dev/null "$endpoint/" && curl -s -o /dev/null "http://127.0.0.1:$gw_port/" && break
	sleep 0.1
done
curl -s -o /dev/null "$endpoint/" || die "versitygw or the proxy did not come up"

s3curl() {
	curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
# px_stat NAME: a counter of the proxy (gets, get_bytes, heads, lists, other).
px_stat() { curl -s "$endpoint/__stats" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }

# --- listing figures 9 and 10 (issue 11): cold stat and find over a million
# objects. Kept together, apart from the other figures.

# make_million_data writes --big objects straight into the server's
# directory, 1,000 per directory million/dNNNN/.
make_million_data() {
	local d dirs=$((big_n / 1000))
	log "data: $big_n objects in $dirs directories of 1,000 (straight into the server's directory)"
	for ((d = 0; d < dirs; d++)); do
		mkdir -p "$root/bench/million/d$(printf %04d "$d")"
		head -c $((1000 * 64)) /dev/urandom |
			(cd "$root/bench/million/d$(printf %04d "$d")" && split -b 64 -a 3 -d --additional-suffix=.pdf - f)
	done
}
# stat_key is the file of figure 9: the middle of the large prefix.
stat_key() { printf 'smallbig/f%06d.pdf' $((small_n / 2)); }
# reqs_between S0 S1: HEADs and listings between two /__stats answers.
reqs_between() {
	local h0 l0 h1 l1
	h0=$(tr ' ' '\n' <<<"$1" | awk -F= '$1 == "heads" { print $2 }')
	l0=$(tr ' ' '\n' <<<"$1" | awk -F= '$1 == "lists" { print $2 }')
	h1=$(tr ' ' '\n' <<<"$2" | awk -F= '$1 == "heads" { print $2 }')
	l1=$(tr ' ' '\n' <<<"$2" | awk -F= '$1 == "lists" { print $2 }')
	printf '%d' $((h1 - h0 + l1 - l0))
}
fig_stat() { # figure 9, s3docs
	local s0 s1 t
	log "s3docs: cold stat of one file among $small_n"
	mount_fresh s3docs stat
	stat "$mnt/smallbig" >/dev/null # the directory's own lookup is not the figure
	sleep 0.5
	s0=$(curl -s "$endpoint/__stats")
	t=$("$work/bench" stat "$mnt/$(stat_key)")
	sleep 0.5 # a listing called off still reaches the proxy
	s1=$(curl -s "$endpoint/__stats")
	put s3docs.stat_ms "$(calc "\"%.1f\", $t * 1000")"
	put s3docs.stat_reqs "$(reqs_between "$s0" "$s1")"
	unmount s3docs >/dev/null
}
fig_stat_curl() { # figure 9's limit: one HEAD of the same key (the median of 3)
	local i ts=()
	log "curl: HEAD of one key among $small_n"
	for i in 1 2 3; do
		ts+=("$(s3curl -I -o /dev/null -w '%{time_total}' "$endpoint/bench/$(stat_key)")")
	done
	put curl.stat_ms "$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p | awk '{ printf "%.1f", $1 * 1000 }')"
	put curl.stat_reqs 1
}
# find_time DIR WANT: seconds of `find DIR -type f`, checking it finds WANT.
find_time() {
	local t0 n t
	t0=$(now)
	n=$(find "$1" -type f | wc -l)
	t=$(elapsed "$t0")
	((n == $2)) || die "find $1 found $n files, want $2"
	echo "$t"
}
fig_million() { # figure 10, s3docs
	log "s3docs: find over $big_n objects"
	mount_fresh s3docs million
	put s3docs.find1m "$(find_time "$mnt/million" "$big_n")"
	put s3docs.rss_find "$(unmount s3docs)"
	if want local; then
		log "local: find over the server's directory"
		drop_caches
		put local.find1m "$(find_time "$root/bench/million" "$big_n")"
	fi
}

# --- data
object_local="$work/object.bin"
if fig 1 || fig 2 || fig 3 || fig 4 || fig 5 || fig 7 || fig 11; then
	log "data: a $size_mb MB random object (uploaded through S3, so it has an ETag)"
	head -c "$size_bytes" /dev/urandom >"$object_local"
	s3curl -T "$object_local" "$endpoint/bench/object.bin" -o /dev/null
	object_sum=$(sha256sum <"$object_local" | cut -d' ' -f1)
	if fig 11; then s3curl -T "$object_local" "$endpoint/bench/fleet.bin" -o /dev/null; fi
fi
if fig 6 || fig 9; then
	# Written straight into the posix root: objects without ETags, fine for
	# listing, and seconds instead of minutes.
	log "data: 1,000 and $small_n small objects (straight into the server's directory)"
	mkdir -p "$root/bench/small1k" "$root/bench/smallbig"
	head -c $((1000 * 64)) /dev/urandom | (cd "$root/bench/small1k" && split -b 64 -a 6 -d --additional-suffix=.pdf - f)
	head -c $((small_n * 64)) /dev/urandom | (cd "$root/bench/smallbig" && split -b 64 -a 6 -d --additional-suffix=.pdf - f)
fi
if fig 10; then make_million_data; fi
if fig 8 && want s3docs; then
	log "data: a generated 3,000-page PDF of about 1 GiB (a 350 KB image on every page)"
	go run ./internal/tools/mkpdfs -out "$work" -one big.pdf -pages 3000 -image 350000 >/dev/null
	big_bytes=$(stat -c %s "$work/big.pdf")
	s3curl -T "$work/big.pdf" "$endpoint/bench/big.pdf" -o /dev/null
	rm -f "$work/big.pdf"
fi

# --- mounting the three systems
rclone_env=(
	env -u AWS_CA_BUNDLE # rclone 1.60 fails with it set
	RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
	"RCLONE_CONFIG_BENCH_ENDPOINT=$endpoint" "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$key"
	"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$secret" RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
	RCLONE_CONFIG_BENCH_REGION=us-east-1
)
printf '%s:%s\n' "$key" "$secret" >"$work/passwd-s3fs"
chmod 600 "$work/passwd-s3fs"

# mount_fresh SYS TAG: mounts SYS with an empty cache, waits until it
# answers, drops the page cache. Sets mpid; logs to $work/log/SYS-TAG.log.
# s3docs gets the flags in s3docs_extra too.
s3docs_extra=()
mount_fresh() {
	local sys=$1 tag=$2 cache="$work/cache-$1"
	mlog="$work/log/$sys-$tag.log" mtag=$tag
	force_unmount
	rm -rf "$cache"
	mkdir -p -m 700 "$cache"
	local bin="$work/s3docs" extra=("${s3docs_extra[@]}")
	[[ $sys != base ]] || bin="$work/s3docs-base"
	[[ $sys != s3docs-nopt ]] || extra+=(--passthrough=off)
	case $sys in
	s3docs | s3docs-nopt | base)
		"$bin" mount --endpoint-url "$endpoint" --force-path-style --region us-east-1 \
			--cache-dir "$cache" --cache-size 4GiB "${extra[@]}" "s3://bench" "$mnt" >"$mlog" 2>&1 &
		;;
	s3fs)
		s3fs bench "$mnt" -f -o "ro,url=$endpoint,use_path_request_style,passwd_file=$work/passwd-s3fs,use_cache=$cache" \
			>"$mlog" 2>&1 &
		;;
	rclone)
		"${rclone_env[@]}" rclone mount bench:bench "$mnt" --read-only --vfs-cache-mode full \
			--cache-dir "$cache" >"$mlog" 2>&1 &
		;;
	esac
	mpid=$!
	echo "$mpid" >"$work/mount.pid"
	for _ in $(seq 300); do
		if grep -qs " $mnt " /proc/mounts && stat "$mnt/." >/dev/null 2>&1; then
			drop_caches
			return 0
		fi
		kill -0 "$mpid" 2>/dev/null || break
		sleep 0.1
	done
	tail -5 "$mlog" >&2
	die "$sys did not mount"
}
# hwm PID: peak RSS in MiB.
hwm() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# unmount SYS: records the mount's peak RSS as SYS.hwm and unmounts.
unmount() {
	local sys=$1 h
	h=$(hwm "$mpid")
	put "$sys.hwm" "$h"
	put "$sys.hwm_list" "$(get "$sys.hwm_list")${mtag:-?}=$h "
	case $sys in
	s3docs | s3docs-nopt | base) kill -TERM "$mpid" ;;
	*) umount "$mnt" 2>/dev/null || { sleep 1; umount "$mnt"; } ;;
	esac
	for _ in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$mpid" 2>/dev/null; then
		note "$sys did not exit 30 s after unmount: killed"
		kill -KILL "$mpid" 2>/dev/null || true
	fi
	rm -f "$work/mount.pid"
	if grep -qs " $mnt " /proc/mounts; then umount -l "$mnt"; fi
	echo "$h"
}
read_seq() { dd if="$1" of=/dev/null bs=1M status=none; }
# median N...: the median of numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# cpu_secs PID: the user and system CPU seconds PID has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }

# --- figures through a mount
fig_seq() { # figures 1, 2 and 7 (fetched/read, RSS while streaming)
	local sys=$1 b0 b1 t_cold t_warm got c0 c1
	log "$sys: cold and warm sequential read of $size_mb MB"
	mount_fresh "$sys" seq
	b0=$(px_stat get_bytes)
	t_cold=$(seconds read_seq "$mnt/object.bin")
	b1=$(px_stat get_bytes)
	put "$sys.cold" "$(mbps "$size_bytes" "$t_cold")"
	put "$sys.fetch_ratio" "$(calc "\"%.2f\", ($b1 - $b0) / $size_bytes")"
	drop_caches
	t_warm=$(seconds read_seq "$mnt/object.bin")
	put "$sys.warm" "$(mbps "$size_bytes" "$t_warm")"
	if [[ $sys != s3fs && $sys != rclone ]]; then
		local r tl tm ratios=() cpus=()
		for ((r = 0; r < rounds; r++)); do
			drop_caches
			tl=$(seconds cat "$object_local")
			drop_caches
			c0=$(cpu_secs "$mpid")
			tm=$(seconds cat "$mnt/object.bin")
			c1=$(cpu_secs "$mpid")
			ratios+=("$(calc "\"%.3f\", $tl / $tm")")
			cpus+=("$(calc "\"%.2f\", $c1 - $c0")")
		done
		put "$sys.warm_local" "$(median "${ratios[@]}")"
		put "$sys.warm_cpu" "$(median "${cpus[@]}")"
		put "$sys.warm_rounds" "${ratios[*]} (CPU s ${cpus[*]})"
	fi
	got=$(sha256sum <"$mnt/object.bin" | cut -d' ' -f1)
	[[ $got == "$object_sum" ]] || die "$sys: content through the mount differs"
	put "$sys.rss_stream" "$(unmount "$sys")"
}
fig_cold_rounds() { # figure 1 again: s3docs and the baseline in turn, --rounds rounds
	local r sys t b0 new=() base=()
	for ((r = 1; r <= rounds; r++)); do
		for sys in s3docs base; do
			log "$sys: cold sequential read, round $r of $rounds"
			mount_fresh "$sys" "cold$r"
			b0=$(px_stat get_bytes)
			t=$(seconds read_seq "$mnt/object.bin")
			[[ $(px_stat get_bytes) -ge $((b0 + size_bytes)) ]] || die "$sys: cold read fetched too little"
			if [[ $sys == s3docs ]]; then new+=("$(mbps "$size_bytes" "$t")"); else base+=("$(mbps "$size_bytes" "$t")"); fi
			unmount "$sys" >/dev/null
		done
	done
	put s3docs.cold3 "$(median "${new[@]}")"
	put base.cold3 "$(median "${base[@]}")"
	put s3docs.cold_rounds "${new[*]}"
	put base.cold_rounds "${base[*]}"
}
fig_ttfb() {
	local sys=$1 t
	log "$sys: time to first byte"
	mount_fresh "$sys" ttfb
	t=$("$work/bench" ttfb "$mnt/object.bin")
	put "$sys.ttfb" "$(calc "\"%.1f\", $t * 1000")"
	unmount "$sys" >/dev/null
}
fio_rand() { # fio_rand FILE: prints "MB/s bytes_read"
	fio --name=rand --filename="$1" --readonly --rw=randread --bs=256k --number_ios=200 --randrepeat=1 \
		--ioengine=psync --size="$size_bytes" --output-format=json --output="$work/fio.json" >/dev/null
	jq -r '.jobs[0].read | "\(.bw_bytes / 1e6) \(.io_bytes)"' "$work/fio.json"
}
fig_rand() {
	local sys=$1 b0 b1 r
	log "$sys: 200 random 256 KiB reads"
	mount_fresh "$sys" rand
	b0=$(px_stat get_bytes)
	r=$(fio_rand "$mnt/object.bin")
	b1=$(px_stat get_bytes)
	put "$sys.rand_mbps" "$(calc "\"%.0f\", ${r% *}")"
	put "$sys.rand_mb" "$(calc "\"%.1f\", ($b1 - $b0) / 1e6")"
	unmount "$sys" >/dev/null
}
fig_conc() {
	local sys=$1 b0 b1 p1 p2 t0 t
	log "$sys: two concurrent sequential readers"
	mount_fresh "$sys" conc
	b0=$(px_stat get_bytes)
	t0=$(now)
	read_seq "$mnt/object.bin" &
	p1=$!
	read_seq "$mnt/object.bin" &
	p2=$!
	wait "$p1"
	wait "$p2"
	t=$(elapsed "$t0")
	b1=$(px_stat get_bytes)
	put "$sys.conc" "$(calc "\"%.2f\", ($b1 - $b0) / $size_bytes")"
	put "$sys.conc_mbps" "$(mbps $((2 * size_bytes)) "$t")"
	unmount "$sys" >/dev/null
}
# ls_time DIR WANT: prints the seconds of `ls -l DIR`, checking it lists WANT
# entries (stderr ignored: rclone answers EIO to ls's xattr calls).
ls_time() {
	local t0 n t
	t0=$(now)
	n=$({ timeout 300 ls -l "$1" 2>/dev/null || true; } | grep -c '^-' || true)
	t=$(elapsed "$t0")
	((n == $2)) || die "ls -l $1 listed $n files, want $2 (after $t s; timeout 300 s)"
	echo "$t"
}
fig_ls() {
	local sys=$1 s0 s1
	log "$sys: ls -l of 1,000 entries"
	mount_fresh "$sys" ls1k
	put "$sys.ls1k" "$(ls_time "$mnt/small1k" 1000)"
	unmount "$sys" >/dev/null
	log "$sys: ls -l of $small_n entries"
	mount_fresh "$sys" lsbig
	s0=$(curl -s "$endpoint/__stats")
	put "$sys.lsbig" "$(ls_time "$mnt/smallbig" "$small_n")"
	s1=$(curl -s "$endpoint/__stats")
	put "$sys.lsbig_reqs" "$(paste -d' ' <(tr ' ' '\n' <<<"$s0") <(tr ' ' '\n' <<<"$s1") |
		awk '{ split($1, a, "="); split($2, b, "="); if (a[1] != "get_bytes") printf "%s%s=%d", sep, a[1], b[2] - a[2]; sep = " " }')"
	put "$sys.rss_lsbig" "$(unmount "$sys")"
}
# fetched_since B0: MB fetched through the proxy since it had served B0 bytes.
fetched_since() { calc "\"%.1f\", ($(px_stat get_bytes) - $1) / 1e6"; }
# worker_peak: the largest split worker peak RSS (MiB) in the mount's log.
worker_peak() {
	local w
	w=$(grep -o 'peak_rss=[0-9]*' "$mlog" | cut -d= -f2 | sort -n | tail -1 || true)
	[[ -n $w ]] && calc "\"%.1f\", $w / 1048576"
}
fig_parts() { # figure 8: s3docs's .parts
	local dir="$mnt/.parts/big.pdf" b0 t
	log "s3docs: page count of the 3,000-page PDF"
	mount_fresh s3docs parts-count
	b0=$(px_stat get_bytes)
	t=$(seconds getfattr -n user.s3docs.pages "$mnt/big.pdf")
	put s3docs.pc_s "$t"
	put s3docs.pc_mb "$(fetched_since "$b0")"
	put s3docs.pc_rss "$(worker_peak_after_unmount)"
	log "s3docs: pages 2001-2050 of it under .parts"
	mount_fresh s3docs parts
	b0=$(px_stat get_bytes)
	t=$(seconds cat "$dir/pages-2001-2050.pdf")
	put s3docs.part_first "$t"
	put s3docs.part_mb "$(fetched_since "$b0")"
	pdfinfo "$dir/pages-2001-2050.pdf" | grep -q '^Pages: *50$' || die "part has the wrong page count"
	# Another part of pages already fetched (the worker's extract alone),
	# and one elsewhere in the file (its pages' chunks fetched too).
	put s3docs.part_later "$(calc "\"%.1f\", $(seconds cat "$dir/pages-2011-2040.pdf") * 1000")"
	b0=$(px_stat get_bytes)
	put s3docs.part_other "$(calc "\"%.1f\", $(seconds cat "$dir/pages-1601-1650.pdf") * 1000")"
	put s3docs.part_other_mb "$(fetched_since "$b0")"
	put s3docs.daemon_parts_rss "$(hwm "$mpid")"
	put s3docs.split_rss "$(worker_peak_after_unmount)"
}
# worker_peak_after_unmount: unmounts s3docs (the worker's log line comes
# as it stops) and prints the worker's peak RSS.
worker_peak_after_unmount() {
	unmount s3docs >/dev/null
	worker_peak
}
# tool_run NAME KEY CMD...: runs CMD on a fresh s3docs mount without
# readahead, recording its time, its peak RSS and the MB it made s3docs fetch.
tool_run() {
	local name=$1 k=$2 b0 out
	shift 2
	s3docs_extra=(--read-ahead 0)
	mount_fresh s3docs "$name-$k"
	s3docs_extra=()
	b0=$(px_stat get_bytes)
	out=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
	put "$name.${k}_s" "${out%% *}"
	put "$name.${k}_rss" "$(calc "\"%.1f\", ${out##* } / 1024")"
	put "$name.${k}_mb" "$(fetched_since "$b0")"
	unmount s3docs >/dev/null
}
fig_parts_tools() { # figure 8's peers: qpdf and mutool on the same PDF
	local f="$mnt/big.pdf"
	log "qpdf and mutool: page count and pages 2001-2050 of the same PDF through s3docs"
	tool_run qpdf pc qpdf --show-npages "$f"
	tool_run qpdf part qpdf --empty --pages "$f" 2001-2050 -- "$work/qpdf-part.pdf"
	tool_run mutool pc mutool show "$f" trailer/Root/Pages/Count
	tool_run mutool part mutool merge -o "$work/mutool-part.pdf" "$f" 2001-2050
	rm -f "$work/qpdf-part.pdf" "$work/mutool-part.pdf"
}

# --- figure 11 (issue 19): a fleet of mounts of one system reading the same
# cold object at once through a store that throttles.

# fleet_mount SYS I mounts the I-th instance of SYS on $work/fleet/SYS-I/mnt
# with a cache of its own, and waits until it answers.
fleet_mount() {
	local sys=$1 d="$work/fleet/$1-$2" pid
	mkdir -p -m 700 "$d/mnt" "$d/cache"
	case $sys in
	s3docs)
		"$work/s3docs" mount --endpoint-url "$endpoint" --force-path-style --region us-east-1 \
			--cache-dir "$d/cache" --cache-size 4GiB "s3://bench" "$d/mnt" >"$d/log" 2>&1 &
		;;
	s3fs)
		s3fs bench "$d/mnt" -f -o "ro,url=$endpoint,use_path_request_style,passwd_file=$work/passwd-s3fs,use_cache=$d/cache" \
			>"$d/log" 2>&1 &
		;;
	rclone)
		"${rclone_env[@]}" rclone mount bench:bench "$d/mnt" --read-only --vfs-cache-mode full \
			--cache-dir "$d/cache" >"$d/log" 2>&1 &
		;;
	esac
	pid=$!
	echo "$sys $pid $d/mnt" >>"$work/fleet.mounts"
	for _ in $(seq 300); do
		if grep -qs " $d/mnt " /proc/mounts && stat "$d/mnt/." >/dev/null 2>&1; then return 0; fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -5 "$d/log" >&2
	die "$sys mount $2 did not come up"
}
# stat_of STATS KEY: one counter of a /__stats answer.
stat_of() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
fig_fleet() {
	local sys=$1 i d s0 s1 t0 pids=() right=0 errors=0 k
	local needed=$((fleet_n * ((size_bytes + 8388607) / 8388608)))
	log "$sys: $fleet_n mounts read the same cold $size_mb MB object, $fleet_rate requests a second let through"
	for ((i = 1; i <= fleet_n; i++)); do fleet_mount "$sys" "$i"; done
	drop_caches
	curl -sf "$endpoint/__throttle?rate=$fleet_rate&status=$fleet_status" >/dev/null
	s0=$(curl -s "$endpoint/__stats")
	t0=$(now)
	for ((i = 1; i <= fleet_n; i++)); do
		d="$work/fleet/$sys-$i"
		(
			ts=$(now)
			if out=$(sha256sum "$d/mnt/fleet.bin" 2>"$d/err"); then
				echo "ok ${out%% *} $(elapsed "$ts")"
			else
				echo "error - $(elapsed "$ts") $(head -c 200 "$d/err")"
			fi
		) >"$d/result" &
		pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k"; done
	put "$sys.fleet_wall" "$(elapsed "$t0")"
	s1=$(curl -s "$endpoint/__stats")
	curl -sf "$endpoint/__throttle?rate=0" >/dev/null
	for ((i = 1; i <= fleet_n; i++)); do
		d="$work/fleet/$sys-$i"
		read -r k sum _ <"$d/result"
		if [[ $k == ok && $sum == "$object_sum" ]]; then
			right=$((right + 1))
		elif [[ $k != ok ]]; then
			errors=$((errors + 1))
			# (A figure runs in a subshell: its notes would be lost.)
			[[ -n $(get "$sys.fleet_first_error") ]] || put "$sys.fleet_first_error" "mount $i: $(tr '\n' ' ' <"$d/result")"
		fi
	done
	put "$sys.fleet_right" "$right"
	put "$sys.fleet_errors" "$errors"
	for k in gets heads lists other throttled; do
		put "$sys.fleet_$k" $(($(stat_of "$s1" "$k") - $(stat_of "$s0" "$k")))
	done
	put "$sys.fleet_needed" "$needed"
	if [[ $sys == s3docs ]]; then
		put s3docs.fleet_log_lines "$(cat "$work"/fleet/s3docs-*/log | grep -c 'S3 is throttling' || true)"
	fi
	fleet_unmount
	rm -rf "$work/fleet"
	sleep 2 # the next system starts with a full bucket
}

# --- the limits
fig_curl() {
	local t t0 b0 b1 blocks i off tok page n=0 d want
	if fig 1; then
		log "curl: plain GET of the object"
		drop_caches
		t=$(seconds s3curl "$endpoint/bench/object.bin" -o /dev/null)
		put curl.cold "$(mbps "$size_bytes" "$t")"
		put curl.fetch_ratio 1.00
	fi
	if fig 3; then
		log "curl: time to first byte (ranged GET of byte 0)"
		drop_caches
		t=$(s3curl -r 0-0 "$endpoint/bench/object.bin" -o /dev/null -w '%{time_starttransfer}')
		put curl.ttfb "$(calc "\"%.1f\", $t * 1000")"
	fi
	if fig 4; then
		log "curl: 200 ranged GETs of 256 KiB on one connection"
		local -a args=()
		blocks=$((size_bytes / 262144))
		RANDOM=1
		for i in $(seq 200); do
			off=$((((RANDOM << 15 | RANDOM) % blocks) * 262144))
			((i == 1)) || args+=(--next)
			args+=(-sSf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret"
				-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -r "$off-$((off + 262143))"
				-o /dev/null "$endpoint/bench/object.bin")
		done
		drop_caches
		b0=$(px_stat get_bytes)
		t=$(seconds curl "${args[@]}")
		b1=$(px_stat get_bytes)
		put curl.rand_mbps "$(mbps $((200 * 262144)) "$t")"
		put curl.rand_mb "$(calc "\"%.1f\", ($b1 - $b0) / 1e6")"
	fi
	if fig 5; then
		log "curl: two concurrent plain GETs"
		drop_caches
		b0=$(px_stat get_bytes)
		t0=$(now)
		s3curl "$endpoint/bench/object.bin" -o /dev/null &
		local p1=$!
		s3curl "$endpoint/bench/object.bin" -o /dev/null &
		wait "$p1"
		wait $!
		t=$(elapsed "$t0")
		b1=$(px_stat get_bytes)
		put curl.conc "$(calc "\"%.2f\", ($b1 - $b0) / $size_bytes")"
		put curl.conc_mbps "$(mbps $((2 * size_bytes)) "$t")"
	fi
	if fig 6; then
		for d in small1k smallbig; do
			want=1000
			[[ $d == smallbig ]] && want=$small_n
			log "curl: ListObjectsV2 of $want entries"
			drop_caches
			tok="" n=0
			t0=$(now)
			while :; do
				# The query by hand, sorted and encoded: curl 7.88 signs -G
				# --data-urlencode queries wrongly.
				local q="list-type=2&prefix=$d%2F"
				[[ -z $tok ]] || q="continuation-token=$(jq -rn --arg t "$tok" '$t | @uri')&$q"
				page=$(s3curl "$endpoint/bench?$q")
				n=$((n + $(grep -o '<Key>' <<<"$page" | wc -l)))
				tok=$(sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p' <<<"$page" |
					sed 's/&amp;/\&/g; s/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g')
				[[ -n $tok ]] || break
			done
			t=$(elapsed "$t0")
			((n == want)) || die "listing $d gave $n keys, want $want"
			if [[ $d == small1k ]]; then put curl.ls1k "$t"; else put curl.lsbig "$t"; fi
		done
	fi
}
fig_local() {
	local r t
	if fig 2; then
		log "local: cat of the object from disk"
		drop_caches
		t=$(seconds cat "$object_local")
		put local.warm "$(mbps "$size_bytes" "$t")"
	fi
	if fig 3; then
		drop_caches
		t=$("$work/bench" ttfb "$object_local")
		put local.ttfb "$(calc "\"%.1f\", $t * 1000")"
	fi
	if fig 4; then
		log "local: fio on the file on disk"
		drop_caches
		r=$(fio_rand "$object_local")
		put local.rand_mbps "$(calc "\"%.0f\", ${r% *}")"
	fi
	if fig 6; then
		log "local: ls -l of the server's directories"
		drop_caches
		put local.ls1k "$(ls_time "$root/bench/small1k" 1000)"
		drop_caches
		put local.lsbig "$(ls_time "$root/bench/smallbig" "$small_n")"
	fi
}

# --- the run
want curl && run_fig "curl limits" fig_curl
if fig 9 && want curl; then run_fig "curl: HEAD" fig_stat_curl; fi
want local && run_fig "local limits" fig_local
for sys in "${systems[@]}"; do
	if fig 1; then run_fig "$sys: sequential read" fig_seq "$sys"; fi
	if fig 3; then run_fig "$sys: time to first byte" fig_ttfb "$sys"; fi
	if fig 4; then run_fig "$sys: random reads" fig_rand "$sys"; fi
	if fig 5; then run_fig "$sys: concurrent readers" fig_conc "$sys"; fi
	if fig 6; then run_fig "$sys: ls -l" fig_ls "$sys"; fi
	if fig 8 && [[ $sys == s3docs ]]; then
		run_fig "s3docs: .parts" fig_parts
		run_fig "qpdf and mutool beside .parts" fig_parts_tools
	fi
	if fig 9 && [[ $sys == s3docs ]]; then run_fig "s3docs: cold stat" fig_stat; fi
	if fig 10 && [[ $sys == s3docs ]]; then run_fig "s3docs: find over $big_n" fig_million; fi
	if fig 11; then run_fig "$sys: fleet under throttling" fig_fleet "$sys"; fi
	# Figure 7: the largest peak RSS of all this system's mounts.
	put "$sys.rss_max" "$(awk -F= -v k="$sys.hwm" '$1 == k && $2 > m { m = $2 } END { if (m != "") print m }' "$results")"
	if [[ $sys == s3docs ]] && fig 1; then
		# Right after s3docs, back to back: passthrough off, and the
		# baseline.
		for x in "${seq_extra[@]}"; do run_fig "$x: sequential read" fig_seq "$x"; done
		[[ -z $baseline ]] || run_fig "cold reads against the baseline" fig_cold_rounds
	fi
done
run_secs=$(($(date +%s) - started))

# --- the report
# columns: key|heading|direction (hi: more is better, lo: less is better)|limit row
cols=(
	"cold|1 cold seq MB/s|hi|curl"
	"warm|2 warm seq MB/s|hi|local"
	"warm_local|2 warm cat / local cat, median|hi|-"
	"warm_cpu|2 warm daemon CPU s|lo|-"
	"cold3|1 cold seq MB/s, median|hi|-"
	"ttfb|3 TTFB ms|lo|curl"
	"rand_mbps|4 random MB/s|hi|curl"
	"rand_mb|4 random MB fetched|lo|curl"
	"conc|5 two readers fetched/size|lo|-"
	"ls1k|6 ls -l 1k s|lo|curl"
	"lsbig|6 ls -l ${small_n} s|lo|curl"
	"rss_stream|7 RSS streaming MiB|lo|-"
	"rss_max|7 RSS max MiB|lo|-"
	"fetch_ratio|7 fetched/read|lo|-"
	"part_first|8 50-page part s|lo|-"
	"part_later|8 later part ms|lo|-"
	"split_rss|8 split worker RSS MiB|lo|-"
	"rss_lsbig|6 RSS after ls -l ${small_n} MiB|lo|-"
	"stat_ms|9 cold stat ms|lo|curl"
	"stat_reqs|9 cold stat requests|lo|curl"
	"find1m|10 find ${big_n} s|lo|local"
	"rss_find|10 RSS after find MiB|lo|-"
)
val() { local v; v=$(get "$1.$2"); printf '%s' "${v:-—}"; }
ratio() { # ratio A B
	[[ $1 != — && $2 != — && -n $1 && -n $2 ]] || { printf '—'; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "—"; else printf "%.2f", a / b }'
}
best_peer() { # best_peer KEY DIR: the best of s3fs and rclone
	local k=$1 dir=$2 v b=""
	for p in s3fs rclone; do
		v=$(get "$p.$k")
		[[ -n $v ]] || continue
		if [[ -z $b ]] || awk -v v="$v" -v b="$b" -v d="$dir" 'BEGIN { exit !(d == "hi" ? v > b : v < b) }'; then b=$v; fi
	done
	printf '%s' "${b:-—}"
}
report() {
	printf '# s3docs benchmark\n\n'
	printf 'Run %s on %s (%s cores, %s, load %s at the end), object %s MB, listing of 1,000 and %s objects, mode %s; took %d s.\n' \
		"$(date -u +%Y-%m-%dT%H:%MZ)" "$(uname -r)" "$(nproc)" \
		"$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)" \
		"$(cut -d' ' -f1-3 /proc/loadavg)" "$size_mb" "$small_n" "$mode" "$run_secs"
	# shellcheck disable=SC2016 # backquotes are Markdown
	printf 'Peers: %s; %s. MB = 10^6 bytes. "curl" is a plain `curl --aws-sigv4` through the same proxy, "local" the same bytes on local disk.\n\n' \
		"$(s3fs --version 2>/dev/null | head -1 | sed 's/Amazon Simple Storage Service File System V/s3fs /; s/ (commit.*//')" \
		"$(rclone version 2>/dev/null | head -1)"
	if [[ $mode == fleet ]]; then
		fleet_report
	else
		main_report
	fi
	if [[ -s $work/notes ]]; then
		printf '\n## Problems\n\n'
		cat "$work/notes"
	fi
	# shellcheck disable=SC2016 # backquotes are Markdown
	printf '\nReproduce: `scripts/bench.sh --size-mb %s --small %s%s%s%s%s %s` (as root).\n' "$size_mb" "$small_n" \
		"$([[ $mode != million ]] || printf ' --big %s' "$big_n")" \
		"$([[ $mode != fleet ]] || printf ' --fleet %s --fleet-rate %s --fleet-status %s' "$fleet_n" "$fleet_rate" "$fleet_status")" \
		"$([[ $only == s3docs,s3fs,rclone,curl,local ]] || printf ' --only %s' "$only")" \
		"$([[ -z $baseline ]] || printf ' --baseline %s --rounds %s' "$baseline" "$rounds")" "$mode"
}
# fleet_report: figure 11's table and targets.
fleet_report() {
	local sys sent n
	n=$(val s3docs fleet_needed)
	[[ $n != — ]] || n=$(val s3fs fleet_needed)
	[[ $n != — ]] || n=$(val rclone fleet_needed)
	printf '## A fleet under throttling\n\n'
	printf '%s mounts of each system, each with its own cache, `sha256sum` the same cold %s MB object at once; the proxy lets %s requests a second through (every kind; a token bucket one second deep) and answers the rest %s. Needed: %s GETs (one per 8 MiB per mount); ideal wall time: needed / rate = %s s.\n\n' \
		"$fleet_n" "$size_mb" "$fleet_rate" "$([[ $fleet_status == 503 ]] && echo "503 SlowDown" || echo 429)" "$n" \
		"$(calc "\"%.1f\", $n / $fleet_rate")"
	printf '| system | reads right | errors | wall s | wall / ideal | requests sent, throttled included | GETs / HEADs / LISTs / other | throttled | sent / needed |\n'
	printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
	for sys in "${systems[@]}"; do
		[[ -n $(get "$sys.fleet_wall") ]] || continue # its run failed: see Problems
		sent=$(($(getn "$sys.fleet_gets") + $(getn "$sys.fleet_heads") + $(getn "$sys.fleet_lists") + $(getn "$sys.fleet_other")))
		printf '| %s | %s of %s | %s | %s | %s | %s | %s / %s / %s / %s | %s | %s |\n' "$sys" \
			"$(val "$sys" fleet_right)" "$fleet_n" "$(val "$sys" fleet_errors)" \
			"$(calc "\"%.1f\", $(val "$sys" fleet_wall)")" \
			"$(calc "\"%.2f\", $(val "$sys" fleet_wall) * $fleet_rate / $n")" "$sent" \
			"$(val "$sys" fleet_gets)" "$(val "$sys" fleet_heads)" "$(val "$sys" fleet_lists)" "$(val "$sys" fleet_other)" \
			"$(val "$sys" fleet_throttled)" "$(calc "\"%.2f\", $sent / $n")"
	done
	if want s3docs && [[ -n $(get s3docs.fleet_wall) ]]; then
		sent=$(($(getn s3docs.fleet_gets) + $(getn s3docs.fleet_heads) + $(getn s3docs.fleet_lists) + $(getn s3docs.fleet_other)))
		printf '\n## Targets\n\nIssue 19 sets the last two for 8 mounts reading 128 MB at 8 requests a second (the defaults).\n\n| target | measured | |\n|---|---:|---|\n'
		target "every read right ($fleet_n)" "$(val s3docs fleet_right)" ge "$fleet_n"
		target "no error" "$(val s3docs fleet_errors)" le 0
		target "requests sent ≤ 1.5× the GETs needed" "$(calc "\"%.2f\", $sent / $n")" le 1.5
		target "wall ≤ 1.25× the ideal" "$(calc "\"%.2f\", $(val s3docs fleet_wall) * $fleet_rate / $n")" le 1.25
		printf '\ns3docs logged %s lines saying the store throttles, over its %s daemons.\n' "$(val s3docs fleet_log_lines)" "$fleet_n"
	fi
	for sys in "${systems[@]}"; do
		[[ -z $(get "$sys.fleet_first_error") ]] || printf '\n%s, first failed read: %s\n' "$sys" "$(get "$sys.fleet_first_error")"
	done
}
main_report() {
	local c k h d l row sys
	row="| system |"
	for c in "${cols[@]}"; do IFS='|' read -r _ h _ _ <<<"$c"; row+=" $h |"; done
	printf '%s\n' "$row"
	row="|---|"
	for _ in "${cols[@]}"; do row+="---:|"; done
	printf '%s\n' "$row"
	for sys in s3docs "${seq_extra[@]}" s3fs rclone curl local; do
		[[ $sys == s3docs-nopt || $sys == base ]] || want "$sys" || continue
		case $sys in
		s3docs-nopt) row="| s3docs --passthrough=off |" ;;
		base) row="| s3docs $baseline (base) |" ;;
		*) row="| $sys |" ;;
		esac
		for c in "${cols[@]}"; do IFS='|' read -r k _ _ _ <<<"$c"; row+=" $(val "$sys" "$k") |"; done
		printf '%s\n' "$row"
	done
	if want s3docs; then
		row="| *s3docs / best peer* |"
		for c in "${cols[@]}"; do
			IFS='|' read -r k _ d _ <<<"$c"
			row+=" $(ratio "$(val s3docs "$k")" "$(best_peer "$k" "$d")") |"
		done
		printf '%s\n' "$row"
		row="| *s3docs / limit* |"
		for c in "${cols[@]}"; do
			IFS='|' read -r k _ _ l <<<"$c"
			if [[ $l == - ]]; then row+=" — |"; else row+=" $(ratio "$(val s3docs "$k")" "$(val "$l" "$k")") |"; fi
		done
		printf '%s\n' "$row"
		for x in "${seq_extra[@]}"; do
			row="| *s3docs / $x* |"
			for c in "${cols[@]}"; do
				IFS='|' read -r k _ _ _ <<<"$c"
				row+=" $(ratio "$(val s3docs "$k")" "$(val "$x" "$k")") |"
			done
			printf '%s\n' "$row"
		done
	fi
	# shellcheck disable=SC2016 # backquotes are Markdown
	printf '\nLimits: cold seq, TTFB, random and listing against curl; warm seq against local `cat`.\n'
	if want s3docs; then
		printf '\n## Targets\n\n| target | measured | |\n|---|---:|---|\n'
		target "cold seq ≥ 0.75× plain GET" "$(ratio "$(val s3docs cold)" "$(val curl cold)")" ge 0.75
		target "cold seq ≥ 2× s3fs" "$(ratio "$(val s3docs cold)" "$(val s3fs cold)")" ge 2
		target "warm seq ≥ 0.8× local cat" "$(ratio "$(val s3docs warm)" "$(val local warm)")" ge 0.8
		target "warm cat ≥ 0.8× local cat, side by side" "$(val s3docs warm_local)" ge 0.8
		target "warm seq: daemon CPU ≤ 0.05 s" "$(val s3docs warm_cpu)" le 0.05
		[[ -z $baseline ]] || target "cold seq ≥ 1× the baseline's (medians)" "$(ratio "$(val s3docs cold3)" "$(val base cold3)")" ge 1
		target "TTFB ≤ 0.5× best peer" "$(ratio "$(val s3docs ttfb)" "$(best_peer ttfb lo)")" le 0.5
		target "random 256 KiB ≥ 1.5× best peer" "$(ratio "$(val s3docs rand_mbps)" "$(best_peer rand_mbps hi)")" ge 1.5
		target "two readers fetch ≤ 1.05× the object" "$(val s3docs conc)" le 1.05
		target "ls -l 1,000 ≤ 0.25× best peer" "$(ratio "$(val s3docs ls1k)" "$(best_peer ls1k lo)")" le 0.25
		target "ls -l $small_n in ≤ 3 s" "$(val s3docs lsbig)" le 3
		target "peak RSS ≤ 32 MiB streaming $size_mb MB" "$(val s3docs rss_stream)" le 32
		target ".parts page count fetches ≤ 2% of the PDF" "$(pct "$(val s3docs pc_mb)")" le 2
		target ".parts 50-page part fetches ≤ 5% of the PDF" "$(pct "$(val s3docs part_mb)")" le 5
		target ".parts 50-page part of 1 GiB ≤ 1.5 s" "$(val s3docs part_first)" le 1.5
		target ".parts later part (pages fetched) ≤ 50 ms" "$(val s3docs part_later)" le 50
		target ".parts split worker peak RSS ≤ 64 MiB" "$(val s3docs split_rss)" le 64
		target "ls -l $small_n ≤ 0.5× one curl listing" "$(ratio "$(val s3docs lsbig)" "$(val curl lsbig)")" le 0.5
		target "RSS ≤ 64 MiB after ls -l $small_n" "$(val s3docs rss_lsbig)" le 64
		target "cold stat ≤ 3× one HEAD" "$(ratio "$(val s3docs stat_ms)" "$(val curl stat_ms)")" le 3
		target "cold stat ≤ 2 requests" "$(val s3docs stat_reqs)" le 2
		target "RSS ≤ 64 MiB after find over $big_n" "$(val s3docs rss_find)" le 64
	fi
	printf '\n## Details\n\n'
	for sys in "${systems[@]}"; do
		printf -- '- %s: two readers together %s MB/s; requests during ls -l of %s: %s; peak RSS MiB of each mount: %s\n' \
			"$sys" "$(val "$sys" conc_mbps)" "$small_n" "$(val "$sys" lsbig_reqs)" "$(val "$sys" hwm_list)"
	done
	for sys in s3docs "${seq_extra[@]}"; do
		[[ $(get "$sys.warm_rounds") == "" ]] ||
			printf -- '- %s: warm cat / local cat, round by round: %s\n' "$sys" "$(val "$sys" warm_rounds)"
		[[ $(get "$sys.cold_rounds") == "" ]] ||
			printf -- '- %s: cold MB/s, round by round: %s\n' "$sys" "$(val "$sys" cold_rounds)"
	done
	want curl && printf -- '- curl: two concurrent GETs together %s MB/s\n' "$(val curl conc_mbps)"
	if want s3docs && fig 8; then
		parts_report
	fi
}
# pct MB: MB as a percentage of the big PDF.
pct() {
	[[ $1 != — && -n $1 && -n ${big_bytes:-} ]] || { printf '—'; return; }
	calc "\"%.2f\", $1 * 1e6 / $big_bytes * 100"
}
parts_report() {
	printf '\n## .parts beside qpdf and mutool\n\n'
	printf 'The same generated PDF (%s MB, 3,000 pages, a 350 KB image on every page, each page dictionary beside its image), through s3docs on a fresh mount with the page cache dropped for each command; the tools on mounts with `--read-ahead 0`, so that what was fetched is what they read. Peak RSS: the tool; for s3docs the split worker (the daemon peaked at %s MiB).\n\n' \
		"$(calc "\"%.0f\", ${big_bytes:-0} / 1e6")" "$(val s3docs daemon_parts_rss)"
	printf '| | page count s | page count MB fetched | page count peak RSS MiB | pages 2001-2050 s | pages 2001-2050 MB fetched | pages 2001-2050 peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|\n'
	printf '| s3docs .parts | %s | %s | %s | %s | %s | %s |\n' "$(val s3docs pc_s)" "$(val s3docs pc_mb)" "$(val s3docs pc_rss)" \
		"$(val s3docs part_first)" "$(val s3docs part_mb)" "$(val s3docs split_rss)"
	for t in qpdf mutool; do
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$(val "$t" pc_s)" "$(val "$t" pc_mb)" "$(val "$t" pc_rss)" \
			"$(val "$t" part_s)" "$(val "$t" part_mb)" "$(val "$t" part_rss)"
	done
	printf '\nOn the same mount after pages 2001-2050: pages 2011-2040 (already fetched) in %s ms; pages 1601-1650 in %s ms, fetching %s MB.\n' \
		"$(val s3docs part_later)" "$(val s3docs part_other)" "$(val s3docs part_other_mb)"
	printf '\nqpdf: `qpdf --show-npages`, `qpdf --empty --pages F 2001-2050 --`; mutool: `mutool show F trailer/Root/Pages/Count`, `mutool merge -o OUT F 2001-2050`.\n'
}
target() { # target TEXT VALUE ge|le BOUND
	local verdict=—
	if [[ $2 != — && -n $2 ]]; then
		if awk -v v="$2" -v b="$4" -v op="$3" 'BEGIN { exit !(op == "ge" ? v >= b : v <= b) }'; then
			verdict=met
		else
			verdict="**missed**"
		fi
	fi
	printf '| %s | %s | %s |\n' "$1" "$2" "$verdict"
}

report >"$work/report.md"
cat "$work/report.md"
if [[ -n $out ]]; then
	cp "$work/report.md" "$out"
	log "wrote $out"
fi
