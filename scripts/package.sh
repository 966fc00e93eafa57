#!/usr/bin/env bash
# Builds the Debian package of s3docs: dist/s3docs_<version>_<arch>.deb.
#
#   scripts/package.sh                 # version from git, this machine's arch
#   S3DOCS_VERSION=0.2.0 scripts/package.sh
#
# The packager is nfpm, run with `go run ...@version` like staticcheck in
# scripts/test.sh: pinned here, and built with its own go.mod, so that its
# dependencies never enter the module graph of the daemon (a go.mod `tool`
# line would let them raise the versions s3docs links with).
#
# Environment:
#   S3DOCS_VERSION     the package's version; default 0.1.<commits>+g<hash>
#                      from git (increasing along main), 0.1.0 outside git
#   S3DOCS_ARCH        Debian architecture (default: dpkg's, else go env GOARCH)
#   S3DOCS_MAINTAINER  the Maintainer field
# It prints the path of the package on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

NFPM_VERSION=v2.48.0

version=${S3DOCS_VERSION:-}
if [[ -z $version ]]; then
	if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
		version="0.1.$(git rev-list --count HEAD)+g$(git rev-parse --short=12 HEAD)"
	else
		version=0.1.0
	fi
fi
# A Debian version of a native package: no revision (no "-").
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "S3DOCS_VERSION=$version is not a Debian version without revision"
arch=${S3DOCS_ARCH:-$(dpkg --print-architecture 2>/dev/null || go env GOARCH)}
case $arch in
amd64 | arm64 | riscv64 | ppc64el | s390x) goarch=${arch/ppc64el/ppc64le} ;;
i386) goarch=386 ;;
armhf) goarch=arm ;;
*) die "unsupported architecture $arch" ;;
esac
export S3DOCS_VERSION=$version S3DOCS_ARCH=$arch
# The files' times in the package: the commit's, so that two builds of one
# commit are the same package (nfpm reads SOURCE_DATE_EPOCH).
if [[ -z ${SOURCE_DATE_EPOCH:-} ]] && git rev-parse --verify -q HEAD >/dev/null 2>&1; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
	export SOURCE_DATE_EPOCH
fi
export S3DOCS_MAINTAINER=${S3DOCS_MAINTAINER:-s3docs maintainers <s3docs-maintainers@example.org>}

stage=build/deb
rm -rf "$stage"
mkdir -p "$stage" dist

log "building s3docs $version for $arch"
# Static (no cgo, so no libc dependency), position-independent (ASLR), stripped;
# -trimpath and the fixed version keep the build reproducible.
CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath -buildmode=pie \
	-ldflags "-s -w -X main.packageVersion=$version" -o "$stage/s3docs" ./cmd/s3docs

# Man pages from the option table of `s3docs mount --help`; documentation
# compressed as Debian's policy asks (gzip -9n: no name, no time stamp).
go run ./internal/tools/mkman -out "$stage" -version "$version"
gzip -9n "$stage/s3docs.1" "$stage/mount.fuse.s3docs.8"
gzip -9n <README.md >"$stage/README.md.gz"
mkdir -p "$stage/docs"
for doc in docs/*.md; do
	gzip -9n <"$doc" >"$stage/docs/$(basename "$doc").gz"
done

# The changelog of a package built from a commit: one entry naming it.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
commit=$(git rev-parse HEAD 2>/dev/null || echo "no git")
maint=$S3DOCS_MAINTAINER
{
	printf 's3docs (%s) unstable; urgency=medium\n\n' "$version"
	printf '  * Built from commit %s.\n\n' "$commit"
	printf ' -- %s  %s\n' "$maint" "$date"
} | gzip -9n >"$stage/changelog.gz"

deb="dist/s3docs_${version}_${arch}.deb"
rm -f "$deb"
log "packaging with nfpm $NFPM_VERSION"
# With @version, go run ignores this module: nfpm's go.mod alone decides its
# build. It runs here because the config's paths are relative to the root.
go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" package \
	--config packaging/deb/nfpm.yaml --packager deb --target "$deb" >&2
log "wrote $deb"
printf '%s\n' "$deb"
