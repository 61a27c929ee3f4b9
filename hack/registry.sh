#!/usr/bin/env bash
# Supplies the pinned CNCF Distribution registry binary (registry), the OCI registry that the
# oci:// tests of the bundle fetcher and of `kubectl podium push` run against.
#
# Distribution publishes no release download reachable here, so this builds its command from the
# Go module proxy, in a throwaway wrapper module that requires the pinned version (its go.mod has
# no replace directives, so the wrapper builds it as its own module would). The result is cached
# outside the repository:
#
#   $PODIUM_CACHE_DIR/registry/<version>-<os>-<arch>/registry   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# Usage: hack/registry.sh          provisions the binary and prints its path
#        hack/registry.sh --path   prints the path only, provisioning nothing
set -euo pipefail

REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"
REGISTRY_MODULE="github.com/distribution/distribution/v3"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

# shellcheck source=lib/provision.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/provision.sh"
DIR="$PODIUM_CACHE_ROOT/registry/${REGISTRY_VERSION}-${GOOS}-${GOARCH}"
BIN="$DIR/registry"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "registry: $*" >&2; }

build() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  local work="$WORK"
  log "building ${REGISTRY_MODULE}/cmd/registry ${REGISTRY_VERSION} from the Go module proxy (about 2 minutes on 2 cores, once)"
  local tmp=$1
  # GOFLAGS=-mod=mod lets `go build` record the dependencies' sums in the wrapper's go.sum.
  if ! (cd "$work" &&
    go mod init podium.invalid/registry-build >/dev/null 2>&1 &&
    go get "${REGISTRY_MODULE}@${REGISTRY_VERSION}" &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" "${REGISTRY_MODULE}/cmd/registry"); then
    log "building the registry ${REGISTRY_VERSION} failed (see the output above)"
    return 1
  fi
}

provision "$BIN" build
