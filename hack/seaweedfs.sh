#!/usr/bin/env bash
# Supplies the pinned SeaweedFS binary (weed), the S3-compatible server that the bundle fetcher's
# tests run against.
#
# SeaweedFS has no release download reachable here, and `go install` refuses its module because
# its go.mod has replace directives, so this builds it from the Go module proxy: it downloads the
# module, copies it to a writable directory (the module cache is read-only) and builds ./weed
# there, with the module's own go.mod. The result is cached outside the repository:
#
#   $PODIUM_CACHE_DIR/seaweedfs/<version>-<os>-<arch>/weed   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# Usage: hack/seaweedfs.sh          provisions the binary and prints its path
#        hack/seaweedfs.sh --path   prints the path only, provisioning nothing
set -euo pipefail

SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

# shellcheck source=lib/provision.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/provision.sh"
DIR="$PODIUM_CACHE_ROOT/seaweedfs/${SEAWEEDFS_VERSION}-${GOOS}-${GOARCH}"
BIN="$DIR/weed"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "seaweedfs: $*" >&2; }

build() {
  WORK="$(mktemp -d)"
  trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
  local work="$WORK"
  log "building SeaweedFS ${SEAWEEDFS_VERSION} from the Go module proxy (about 5 minutes on 2 cores, once)"
  local src
  src="$(cd "$work" && go mod download -json "github.com/seaweedfs/seaweedfs@${SEAWEEDFS_VERSION}" |
    sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  [[ -d "$src" ]] || { log "cannot download github.com/seaweedfs/seaweedfs@${SEAWEEDFS_VERSION} from the Go module proxy"; return 1; }
  cp -R "$src" "$work/src"
  chmod -R u+w "$work/src"
  local tmp=$1
  if ! (cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" ./weed); then
    log "building SeaweedFS ${SEAWEEDFS_VERSION} failed (see the compiler output above)"
    return 1
  fi
}

provision "$BIN" build
