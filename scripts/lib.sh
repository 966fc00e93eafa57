# shellcheck shell=bash
# Helpers shared by scripts/test.sh and scripts/demo.sh. Source it from a
# script that runs under `set -euo pipefail`:
#
#	. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Functions:
#	log MSG...          print "==> MSG" on stderr
#	die MSG...          log an error and exit 1
#	ensure_apt PKG...   install the Debian packages that are missing
#	packages_for USE    print the packages of DEBIAN_PACKAGES used by USE
#	ensure_versitygw    go install the pinned versitygw unless already there
#	ensure_deps         everything the tests and the demo need
#	ensure_bench_deps   what scripts/bench.sh needs on top
#	free_port           print a free TCP port on 127.0.0.1
#
# Everything here must work as root on a fresh Debian machine with Go at
# /usr/local/go, and be fast (well under a second) once installed.

# The versitygw release the tests and the demo run against.
VERSITYGW_VERSION=v1.8.0

# DEBIAN_PACKAGES is the one list of the Debian packages that the tests, the
# demo and the benchmark call: package, who uses it ("test": scripts/test.sh
# and scripts/demo.sh, and scripts/package.sh's checks; "bench":
# scripts/bench.sh only), and the programs of
# it that are called ("-" for a package of data or libraries). Tests find a
# program through testenv.Tool, which reads this table to name the package
# when the program is missing; a program a test calls that is not in the
# table fails that test. Essential packages (coreutils, util-linux, mount) are
# listed too, so that a minimal image is covered as well.
DEBIAN_PACKAGES='
fuse3          test   fusermount3
qpdf           test   qpdf
poppler-utils  test   pdfinfo pdftotext
poppler-data   test   -
mupdf-tools    test   mutool
attr           test   getfattr setfattr
curl           test   curl
systemd        test   systemd-analyze
util-linux     test   setpriv unshare nsenter setsid mountpoint
mount          test   mount umount
coreutils      test   cat cp ls mv sha256sum dd timeout
gcc            test   gcc
libc6-dev      test   -
dpkg           test   dpkg dpkg-deb dpkg-query
apt            test   apt-get
init-system-helpers test deb-systemd-helper
lintian        test   lintian
man-db         test   man
prometheus     test   prometheus promtool
fio            bench  fio
jq             bench  jq
s3fs           bench  s3fs
time           bench  time
rclone         bench  rclone
'

# Go is at /usr/local/go on a fresh machine but not necessarily on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

log() {
	printf '==> %s\n' "$*" >&2
}

die() {
	log "ERROR: $*"
	exit 1
}

# as_root runs a command as root: directly when we are root, else via sudo.
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# ensure_apt PKG... installs the packages that are not installed yet. It runs
# `apt-get update` once, and only when something is missing. Output is kept
# quiet and shown only on failure.
ensure_apt() {
	local pkg status
	local -a missing=()
	for pkg in "$@"; do
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		if [[ $status != *"install ok installed"* ]]; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	log "installing Debian packages: ${missing[*]}"
	local out
	out=$(mktemp)
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$out" 2>&1 ||
		! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		die "could not install: ${missing[*]}"
	fi
	rm -f "$out"
}

# go_bin_dir prints where `go install` puts binaries: GOBIN, else the first
# GOPATH entry's bin.
go_bin_dir() {
	local gobin gopath
	gobin=$(go env GOBIN)
	if [[ -n $gobin ]]; then
		printf '%s\n' "$gobin"
		return
	fi
	gopath=$(go env GOPATH)
	printf '%s/bin\n' "${gopath%%:*}"
}

# ensure_versitygw installs versitygw $VERSITYGW_VERSION with `go install`
# unless the binary there was already built from that version, and puts the
# Go bin directory on PATH.
ensure_versitygw() {
	command -v go >/dev/null 2>&1 || die "go not found (expected at /usr/local/go/bin)"
	local bindir bin have
	bindir=$(go_bin_dir)
	bin="$bindir/versitygw"
	case ":$PATH:" in
	*":$bindir:"*) ;;
	*) export PATH="$bindir:$PATH" ;;
	esac
	if [[ -x $bin ]]; then
		have=$(go version -m "$bin" 2>/dev/null |
			awk '$1 == "mod" && $2 == "github.com/versity/versitygw" { print $3 }')
		if [[ $have == "$VERSITYGW_VERSION" ]]; then
			return 0
		fi
		log "versitygw at $bin is ${have:-of unknown version}, want $VERSITYGW_VERSION"
	fi
	log "installing versitygw $VERSITYGW_VERSION with go install (takes about 4 minutes the first time)"
	local tmp
	tmp=$(mktemp -d)
	# Run outside the module so its go.mod and vendoring play no part.
	if ! (cd "$tmp" && GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"); then
		rm -rf "$tmp"
		die "go install versitygw@$VERSITYGW_VERSION failed"
	fi
	rm -rf "$tmp"
	[[ -x $bin ]] || die "versitygw not found at $bin after go install"
}

# packages_for USE prints, one per line, the packages of DEBIAN_PACKAGES
# whose user column is USE.
packages_for() {
	awk -v use="$1" 'NF >= 2 && $2 == use { print $1 }' <<<"$DEBIAN_PACKAGES"
}

# ensure_deps makes sure everything the tests and the demo use is there: the
# "test" packages of DEBIAN_PACKAGES, versitygw and /dev/fuse.
ensure_deps() {
	local -a pkgs
	mapfile -t pkgs < <(packages_for test)
	ensure_apt "${pkgs[@]}"
	ensure_versitygw
	[[ -c /dev/fuse ]] || die "/dev/fuse is missing: FUSE is not available here (a container needs --device /dev/fuse)"
}

# ensure_bench_deps installs what scripts/bench.sh needs beyond ensure_deps:
# the load tools and the peers it measures s3docs against.
ensure_bench_deps() {
	ensure_deps
	local -a pkgs
	mapfile -t pkgs < <(packages_for bench)
	ensure_apt "${pkgs[@]}"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on. The port
# is not reserved: whoever uses it should start soon.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
		return
	fi
	# Without python: pick a random port that /proc/net/tcp{,6} does not show
	# in use (local_address is HEXADDR:HEXPORT).
	local -A used=()
	local addr port _
	while read -r _ addr _; do
		[[ $addr == *:* ]] || continue # the header line
		used[$((16#${addr##*:}))]=1
	done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
	for _ in {1..200}; do
		port=$((20000 + RANDOM % 30000))
		if [[ -z ${used[$port]:-} ]]; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	die "no free port found"
}
