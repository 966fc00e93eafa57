#!/usr/bin/env bash
# Demo: serves sample PDFs from a local S3 server (versitygw) through s3docs.
#
# Usage: scripts/demo.sh [--check] [MOUNTPOINT]   (default: mnt/s3docs in the repo)
#
# Builds s3docs into .demo/bin, writes the sample PDFs (internal/tools/mkpdfs)
# into .demo/samples, starts versitygw on a free loopback port with its data
# in .demo/s3root, uploads the samples to the bucket "docs" through the S3 API
# (so they have ETags), mounts s3://docs at MOUNTPOINT with the cache in
# .demo/cache, shows a few things and waits. Ctrl-C (or SIGTERM) stops the
# daemon (which unmounts), then versitygw, and exits 0. Safe to re-run: it
# cleans up after an earlier run that was killed (its processes, its mount).
# Logs: .demo/s3docs.log, .demo/versitygw.log.
#
# --check runs the same demo without waiting and checks what it shows: the
# sha256 of a PDF read through the mount equals the uploaded file's, and a
# part under .parts/ is a PDF of the pages its name says (pdfinfo, and the
# text of its first page equals pdftotext of that page of the source). Then
# it unmounts, stops everything and exits 0, or exits 1 naming what failed.
# .ci/run runs it under umask 022, as a newcomer's first command.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHECK=false
if [[ ${1:-} == --check ]]; then
	CHECK=true
	shift
fi
case ${1:-} in
-h | --help)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
	exit 0
	;;
-*)
	echo "demo.sh: unknown option $1 (usage: scripts/demo.sh [--check] [MOUNTPOINT])" >&2
	exit 2
	;;
esac
# A MOUNTPOINT argument is relative to the caller's directory.
MNT=${1:-$ROOT/mnt/s3docs}
if [[ $MNT != /* ]]; then
	MNT=$PWD/$MNT
fi
MNT=${MNT%/}
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DEMO=$ROOT/.demo
BUCKET=docs
ACCESS_KEY=demo
SECRET_KEY=demosecret
REGION=us-east-1

DAEMON_PID=
VGW_PID=

# alive PID: the process exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # drop "pid (comm) "
	[[ ${stat:0:1} != Z ]]
}

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL. Reaps the
# process if it is our child.
stop_pid() {
	local pid=$1 secs=$2 i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "pid $pid still running after ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# is_mounted DIR: DIR is a mount point, even a dead FUSE mount ("Transport
# endpoint is not connected") that mountpoint(1) cannot stat.
is_mounted() {
	mountpoint -q "$1" 2>/dev/null && return 0
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts
}

unmount() {
	is_mounted "$1" || return 0
	log "unmounting $1"
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null || umount -l "$1" ||
		log "could not unmount $1"
}

# stop_stale NAME EXE: stop the process an earlier run recorded in
# .demo/NAME.pid if it is still running EXE (the pid may have been reused).
stop_stale() {
	local pidfile=$DEMO/$1.pid pid exe
	[[ -f $pidfile ]] || return 0
	pid=$(<"$pidfile")
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
	if [[ -n $pid && $exe == "$2" ]]; then
		log "stopping $1 (pid $pid) left by an earlier run"
		stop_pid "$pid" 10
	fi
	rm -f "$pidfile"
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $DAEMON_PID ]]; then
		log "stopping s3docs (pid $DAEMON_PID)"
		stop_pid "$DAEMON_PID" 15
		rm -f "$DEMO/s3docs.pid"
	fi
	unmount "$MNT"
	if [[ -n $VGW_PID ]]; then
		log "stopping versitygw (pid $VGW_PID)"
		stop_pid "$VGW_PID" 5
		rm -f "$DEMO/versitygw.pid"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

ensure_deps
VGW_BIN=$(command -v versitygw)

mkdir -p "$DEMO"
stop_stale s3docs "$DEMO/bin/s3docs"
stop_stale versitygw "$VGW_BIN"
unmount "$MNT"

log "building s3docs"
go build -o "$DEMO/bin/s3docs" ./cmd/s3docs ||
	die "go build ./cmd/s3docs failed (is cmd/s3docs finished?)"

log "writing sample PDFs"
go run ./internal/tools/mkpdfs -out "$DEMO/samples"

# A fresh bucket each run; the cache is kept, as a restarted daemon keeps it.
# The daemon makes the cache directory itself, private (0700), whatever the
# umask.
rm -rf "$DEMO/s3root"
mkdir -p "$DEMO/s3root" "$MNT"

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
log "starting versitygw on $URL (log: $DEMO/versitygw.log)"
# setsid: Ctrl-C in the terminal reaches only this script, which stops the
# daemon and the server in order.
setsid versitygw --port "127.0.0.1:$PORT" --access "$ACCESS_KEY" --secret "$SECRET_KEY" \
	--region "$REGION" posix "$DEMO/s3root" >"$DEMO/versitygw.log" 2>&1 </dev/null &
VGW_PID=$!
echo "$VGW_PID" >"$DEMO/versitygw.pid"

# s3 CURL-ARGS...: a signed S3 request. versitygw requires the payload hash
# header, which curl before 8.x does not send by itself.
s3() {
	curl --fail-with-body --silent --show-error --aws-sigv4 "aws:amz:$REGION:s3" \
		--user "$ACCESS_KEY:$SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

for ((i = 0; ; i++)); do
	if curl --silent --output /dev/null "$URL/"; then
		break
	fi
	if ! alive "$VGW_PID" || ((i >= 100)); then
		tail -n 20 "$DEMO/versitygw.log" >&2 || true
		die "versitygw did not start"
	fi
	sleep 0.1
done

log "creating bucket $BUCKET and uploading the samples"
s3 -X PUT "$URL/$BUCKET" >/dev/null
while IFS= read -r -d '' f; do
	key=${f#"$DEMO/samples/"}
	s3 --upload-file "$f" "$URL/$BUCKET/$key" >/dev/null
	log "  put s3://$BUCKET/$key"
done < <(find "$DEMO/samples" -type f -name '*.pdf' -print0 | sort -z)

log "mounting s3://$BUCKET at $MNT (log: $DEMO/s3docs.log)"
AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
	setsid "$DEMO/bin/s3docs" mount --endpoint-url "$URL" --force-path-style --region "$REGION" \
	--cache-dir "$DEMO/cache" --cache-size 1GiB "s3://$BUCKET" "$MNT" \
	>"$DEMO/s3docs.log" 2>&1 </dev/null &
DAEMON_PID=$!
echo "$DAEMON_PID" >"$DEMO/s3docs.pid"

for ((i = 0; ; i++)); do
	if mountpoint -q "$MNT" 2>/dev/null; then
		break
	fi
	if ! alive "$DAEMON_PID" || ((i >= 200)); then
		if alive "$DAEMON_PID"; then
			log "s3docs did not mount $MNT within 20s; last lines of $DEMO/s3docs.log:"
		else
			log "s3docs exited without mounting $MNT; last lines of $DEMO/s3docs.log:"
		fi
		tail -n 30 "$DEMO/s3docs.log" >&2 || true
		die "mount failed"
	fi
	sleep 0.1
done

brief=cases/2024/brief.pdf
part=pages-0051-0100.pdf
echo
log "ls -lR $MNT"
ls -lR "$MNT"
echo
log "sha256sum through the mount vs the local file"
sha256sum "$MNT/$brief" "$DEMO/samples/$brief"
echo
log "pdfinfo $MNT/$brief"
pdfinfo "$MNT/$brief"
echo
log "ls $MNT/.parts/$brief/   (page ranges as PDFs, made on demand)"
ls "$MNT/.parts/$brief/"
log "pdfinfo $MNT/.parts/$brief/$part | grep Pages"
pdfinfo "$MNT/.parts/$brief/$part" | grep Pages
log "getfattr -n user.s3docs.pages $MNT/$brief"
getfattr --absolute-names -n user.s3docs.pages "$MNT/$brief"

if $CHECK; then
	echo
	log "checking what the demo showed"
	want=$(sha256sum <"$DEMO/samples/$brief" | cut -d' ' -f1)
	got=$(sha256sum <"$MNT/$brief" | cut -d' ' -f1)
	[[ $got == "$want" ]] || die "sha256 of $MNT/$brief is $got, the uploaded file's is $want"
	log "  sha256 of $brief through the mount equals the uploaded file's"
	pages=$(pdfinfo "$MNT/.parts/$brief/$part" | awk '$1 == "Pages:" { print $2 }')
	[[ $pages == 50 ]] || die "$part has ${pages:-no} pages, want 50"
	want=$(pdftotext -f 51 -l 51 "$DEMO/samples/$brief" -)
	got=$(pdftotext -f 1 -l 1 "$MNT/.parts/$brief/$part" -)
	[[ -n $want && $got == "$want" ]] || die "page 1 of $part does not hold the text of page 51 of $brief"
	log "  $part has 50 pages, the first one with page 51's text"
	log "demo check passed"
	exit 0 # the EXIT trap unmounts, stops the daemon and the server
fi

cat <<EOF

==> s3docs is serving s3://$BUCKET from $URL at $MNT (pid $DAEMON_PID).
    Things to try in another terminal:
      cmp $MNT/$brief $DEMO/samples/$brief
      pdftotext -f 3 -l 3 $MNT/$brief -
      getfattr -n user.s3docs.pages $MNT/$brief
      ls -l $MNT/.parts/$brief/
      pdfinfo $MNT/.parts/$brief/pages-0001-0050.pdf
      pdftotext $MNT/.parts/$brief/pages-7-9.pdf - | head
      qpdf --check $MNT/.parts/reports/annual.pdf/pages-0351-0400.pdf
      time cat $MNT/reports/annual.pdf >/dev/null   # twice: the second read is cached
      du -sh $DEMO/cache
      touch $MNT/new.pdf                           # read-only: EROFS
      tail -f $DEMO/s3docs.log
    Press Ctrl-C to unmount and stop.
EOF

rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
rm -f "$DEMO/s3docs.pid"
log "s3docs exited with status $rc; last lines of $DEMO/s3docs.log:"
tail -n 20 "$DEMO/s3docs.log" >&2 || true
exit "$rc"
