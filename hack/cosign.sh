#!/usr/bin/env bash
# Supplies the pinned cosign binary, which signs the manager image (make image-sign) and which
# hack/image's tests sign and verify with, against a real registry.
#
# Sigstore's release downloads are not reachable here, so this builds its command from the
# Go module proxy, in a throwaway wrapper module that requires the pinned version (its go.mod has
# no replace directives, so the wrapper builds it as its own module would). The result is cached
# outside the repository:
#
#   $PODIUM_CACHE_DIR/cosign/<version>-<os>-<arch>/cosign   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# Usage: hack/cosign.sh          provisions the binary and prints its path
#        hack/cosign.sh --path   prints the path only, provisioning nothing
set -euo pipefail

COSIGN_VERSION="${COSIGN_VERSION:-v2.6.5}"
COSIGN_MODULE="github.com/sigstore/cosign/v2"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

# shellcheck source=lib/provision.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/provision.sh"
DIR="$PODIUM_CACHE_ROOT/cosign/${COSIGN_VERSION}-${GOOS}-${GOARCH}"
BIN="$DIR/cosign"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "cosign: $*" >&2; }

build() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  local work="$WORK"
  log "building ${COSIGN_MODULE}/cmd/cosign ${COSIGN_VERSION} from the Go module proxy (several minutes on 2 cores, once)"
  local tmp=$1
  # GOFLAGS=-mod=mod lets `go build` record the dependencies' sums in the wrapper's go.sum.
  if ! (cd "$work" &&
    go mod init podium.invalid/cosign-build >/dev/null 2>&1 &&
    go get "${COSIGN_MODULE}@${COSIGN_VERSION}" &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" "${COSIGN_MODULE}/cmd/cosign"); then
    log "building cosign ${COSIGN_VERSION} failed (see the output above)"
    return 1
  fi
}

provision "$BIN" build
