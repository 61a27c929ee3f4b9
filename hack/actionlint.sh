#!/usr/bin/env bash
# Supplies the pinned actionlint binary, with which hack/release's tests check the release
# workflow (.github/workflows).
#
# actionlint's release downloads are not reachable here, so this builds its command from the
# Go module proxy, in a throwaway wrapper module that requires the pinned version (its go.mod has
# no replace directives, so the wrapper builds it as its own module would). The result is cached
# outside the repository:
#
#   $PODIUM_CACHE_DIR/actionlint/<version>-<os>-<arch>/actionlint   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# Usage: hack/actionlint.sh          provisions the binary and prints its path
#        hack/actionlint.sh --path   prints the path only, provisioning nothing
set -euo pipefail

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
ACTIONLINT_MODULE="github.com/rhysd/actionlint"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

# shellcheck source=lib/provision.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/provision.sh"
DIR="$PODIUM_CACHE_ROOT/actionlint/${ACTIONLINT_VERSION}-${GOOS}-${GOARCH}"
BIN="$DIR/actionlint"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "actionlint: $*" >&2; }

build() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  local work="$WORK"
  log "building ${ACTIONLINT_MODULE}/cmd/actionlint ${ACTIONLINT_VERSION} from the Go module proxy (about a minute on 2 cores, once)"
  local tmp=$1
  # GOFLAGS=-mod=mod lets `go build` record the dependencies' sums in the wrapper's go.sum.
  if ! (cd "$work" &&
    go mod init podium.invalid/actionlint-build >/dev/null 2>&1 &&
    go get "${ACTIONLINT_MODULE}@${ACTIONLINT_VERSION}" &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" "${ACTIONLINT_MODULE}/cmd/actionlint"); then
    log "building actionlint ${ACTIONLINT_VERSION} failed (see the output above)"
    return 1
  fi
}

provision "$BIN" build
