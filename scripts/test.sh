#!/usr/bin/env bash
# Runs every check of the project, failing fast, in this order:
#   1. gofmt -l on the repo's .go files (tracked or untracked-but-not-ignored,
#      testdata/ excluded) must print nothing;
#   2. go vet;
#   3. staticcheck (pinned, run with `go run ...@version`);
#   4. go test -race -count=1 -timeout 40m (cmd/s3docs's TestDebianPackage
#      builds the Debian package and installs, upgrades, removes and purges
#      it on this machine; TestAlertRules runs promtool on the alert rules;
#      TestMonitoringAgainstPrometheus runs Debian's Prometheus);
#   5. a grep of every log the tests' s3docs processes wrote for the test
#      credentials and signatures (Authorization, X-Amz-Signature, ...).
# It installs what the tests need first (scripts/lib.sh ensure_deps, plus a C
# compiler for -race). CI runs it with no arguments, as root, with CI=true.
#
# Usage: scripts/test.sh [GO-TEST-ARGS...]
#   No arguments: every step covers ./... .
#   Arguments are passed to `go test` after the defaults above (so a later
#   -timeout or -count wins). Arguments that look like package patterns
#   ("." or starting with ./ ../ or s3docs/) replace ./... for go vet,
#   staticcheck and go test alike; if none is given, ./... is used.
#   Pass flag values that start with ./ in the -flag=value form.
# Without arguments it also runs the memory test of cmd/s3docs once more
# without -race, which inflates RSS (that test skips itself under -race),
# TestBigPDF of splitter/pdfdoc on 1 GiB files (S3DOCS_PDF_FULL=1;
# several minutes, 2 GiB of temporary disk at a time), and the tests of the
# packages that mount (cmd/s3docs, fs) once more with FUSE passthrough off
# (S3DOCS_TEST_PASSTHROUGH=off: every mount gets --passthrough=off), without
# -race: everything must hold on a kernel without passthrough too.
#   Examples:
#     scripts/test.sh                          # everything, as CI does
#     scripts/test.sh ./internal/pdfgen        # one package
#     scripts/test.sh -run TestX ./chunkcache  # one test of chunkcache
#     scripts/test.sh -short -v                # every package, go test -short -v
set -euo pipefail

STATICCHECK_VERSION=v0.8.2

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_deps              # includes gcc and libc6-dev: go test -race needs cgo
export CGO_ENABLED=1

# Split the arguments into package patterns and go test flags.
pkgs=()
test_args=()
for arg in "$@"; do
	case $arg in
	. | ./* | ../* | s3docs | s3docs/*)
		pkgs+=("$arg")
		;;
	*) test_args+=("$arg") ;;
	esac
done
if ((${#pkgs[@]} == 0)); then
	pkgs=(./...)
fi

log "gofmt -l"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	list_go_files() { git ls-files -z --cached --others --exclude-standard -- '*.go'; }
else
	list_go_files() { find . -name '*.go' -not -path './.git/*' -print0; }
fi
go_files=()
while IFS= read -r -d '' f; do
	# Skip testdata (the go tool ignores it) and files deleted but tracked.
	if [[ $f != testdata/* && $f != */testdata/* && -f $f ]]; then
		go_files+=("$f")
	fi
done < <(list_go_files)
if ((${#go_files[@]} > 0)); then
	unformatted=$(printf '%s\0' "${go_files[@]}" | xargs -0 gofmt -l)
	if [[ -n $unformatted ]]; then
		log "these files need gofmt -w:"
		printf '%s\n' "$unformatted" >&2
		exit 1
	fi
fi

log "go vet ${pkgs[*]}"
go vet "${pkgs[@]}"

log "staticcheck $STATICCHECK_VERSION ${pkgs[*]}"
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" "${pkgs[@]}"

# Every s3docs process the tests start copies its output here (see
# testLogOutputs in cmd/s3docs/harness_test.go), for the credentials check.
S3DOCS_TEST_LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/s3docs-test-logs.XXXXXX")
export S3DOCS_TEST_LOG_DIR
log "go test -race -count=1 -timeout 40m ${test_args[*]}${test_args[*]:+ }${pkgs[*]}"
go test -race -count=1 -timeout 40m "${test_args[@]}" "${pkgs[@]}"
if (($# == 0)); then
	log "go test -count=1 -run 'TestMemory|TestHostilePDFs' -v ./cmd/s3docs (memory bounds, without -race)"
	go test -count=1 -timeout 10m -run 'TestMemory|TestHostilePDFs' -v ./cmd/s3docs
	log "go test -count=1 -run TestBigPDF -v ./splitter/pdfdoc with S3DOCS_PDF_FULL=1 (1 GiB PDFs in four layouts: chunks read and peak RSS, without -race)"
	S3DOCS_PDF_FULL=1 go test -count=1 -timeout 30m -run 'TestBigPDF' -v ./splitter/pdfdoc
	# TestDebianPackage is left out: it runs the installed daemon under
	# systemd and mount(8), which the variable does not reach.
	log "go test -count=1 ./cmd/s3docs ./fs with S3DOCS_TEST_PASSTHROUGH=off (every mount with --passthrough=off, without -race)"
	S3DOCS_TEST_PASSTHROUGH=off go test -count=1 -timeout 40m -skip 'TestDebianPackage' ./cmd/s3docs ./fs
fi

# Credentials and signed URLs must never reach a log. The test credentials
# are internal/testenv's; they are read from there so that a rename cannot
# make this check pass vacuously.
log "credentials check of the s3docs logs in $S3DOCS_TEST_LOG_DIR"
test_key() {
	sed -n "s/^[[:space:]]*$1:[[:space:]]*\"\([^\"]*\)\",.*/\1/p" internal/testenv/s3.go | head -n 1
}
access_key=$(test_key AccessKey)
secret_key=$(test_key SecretKey)
if [[ -z $access_key || -z $secret_key ]]; then
	die "cannot find the test credentials in internal/testenv/s3.go"
fi
log_files=$(find "$S3DOCS_TEST_LOG_DIR" -type f | wc -l)
if (($# == 0 && log_files == 0)); then
	die "no s3docs process wrote to $S3DOCS_TEST_LOG_DIR: the credentials check would prove nothing"
fi
if hits=$(grep -r -n -F -e "$secret_key" -e "$access_key" -e X-Amz-Signature -e Signature= \
	-e Authorization -e Credential= "$S3DOCS_TEST_LOG_DIR"); then
	log "credentials or signatures in the logs of s3docs ($log_files files):"
	printf '%s\n' "$hits" | cut -c1-400 >&2
	exit 1
fi
log "no credentials or signatures in $log_files log files"
rm -rf "$S3DOCS_TEST_LOG_DIR"
log "all checks passed"
