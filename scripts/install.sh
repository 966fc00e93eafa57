#!/usr/bin/env bash
# Installs s3docs on this machine the one way there is: it builds the Debian
# package (scripts/package.sh) and installs it with apt, which brings fuse3
# and keeps a record in dpkg. Run as root from the repository:
#
#   scripts/install.sh
#   $EDITOR /etc/default/s3docs    # S3DOCS_SOURCE, S3DOCS_ARGS, credentials
#   systemctl restart s3docs
#
# On a fleet, build once (scripts/package.sh) and install the .deb from an
# apt repository or a configuration-management recipe instead. S3DOCS_VERSION
# and the other variables of scripts/package.sh apply.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_apt fuse3
deb=$(scripts/package.sh)
log "installing $deb"
# --reinstall: a package rebuilt at the same version replaces the installed one.
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall "./$deb"
log "installed. Set S3DOCS_SOURCE in /etc/default/s3docs, then: systemctl restart s3docs"
