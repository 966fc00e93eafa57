#!/usr/bin/env bash
# Installs s3docs on a worker: the binary, the systemd unit, the fstab mount
# helper, and a template of /etc/default/s3docs. Run as root from the repo:
#
#   scripts/install.sh            # build and install
#   systemctl enable --now s3docs # after editing /etc/default/s3docs
#
# PREFIX (default /usr/local) and DESTDIR (default empty; for packaging)
# change where files go.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
ensure_apt fuse3

log "building s3docs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -trimpath -o "$tmp/s3docs" ./cmd/s3docs

log "installing into ${DESTDIR}${PREFIX} and ${DESTDIR}/etc"
install -D -m 0755 "$tmp/s3docs" "${DESTDIR}${PREFIX}/bin/s3docs"
install -D -m 0644 scripts/s3docs.service "${DESTDIR}/etc/systemd/system/s3docs.service"
install -D -m 0644 README.md "${DESTDIR}${PREFIX}/share/doc/s3docs/README.md"
if [[ -f scripts/mount.fuse.s3docs ]]; then
	install -D -m 0755 scripts/mount.fuse.s3docs "${DESTDIR}/sbin/mount.fuse.s3docs"
fi
if [[ ! -e ${DESTDIR}/etc/default/s3docs ]]; then
	install -D -m 0600 /dev/stdin "${DESTDIR}/etc/default/s3docs" <<'CONF'
# Read by s3docs.service. See s3docs mount --help for every flag.
S3DOCS_SOURCE=s3://docs
S3DOCS_ARGS=--cache-size 10GiB
#S3DOCS_ARGS=--endpoint-url http://127.0.0.1:7070 --force-path-style --cache-size 10GiB
#AWS_ACCESS_KEY_ID=
#AWS_SECRET_ACCESS_KEY=
#AWS_REGION=us-east-1
CONF
fi
if [[ -z $DESTDIR ]] && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
	systemctl daemon-reload
fi
log "installed. Edit /etc/default/s3docs, then: systemctl enable --now s3docs"
