#!/usr/bin/env bash
# Supplies the pinned krew binary (kubectl-krew), with which hack/release's tests install the
# plugin from the krew manifest and archive it writes, as a user of krew would.
#
# krew's release downloads are not reachable here, so this builds its command from the
# Go module proxy, in a throwaway wrapper module that requires the pinned version (its go.mod has
# no replace directives, so the wrapper builds it as its own module would). The result is cached
# outside the repository:
#
#   $PODIUM_CACHE_DIR/krew/<version>-<os>-<arch>/kubectl-krew   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# Usage: hack/krew.sh          provisions the binary and prints its path
#        hack/krew.sh --path   prints the path only, provisioning nothing
set -euo pipefail

KREW_VERSION="${KREW_VERSION:-v0.4.3}"
KREW_MODULE="sigs.k8s.io/krew"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

# shellcheck source=lib/provision.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/provision.sh"
DIR="$PODIUM_CACHE_ROOT/krew/${KREW_VERSION}-${GOOS}-${GOARCH}"
BIN="$DIR/kubectl-krew"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "krew: $*" >&2; }

build() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  local work="$WORK"
  log "building ${KREW_MODULE}/cmd/krew ${KREW_VERSION} from the Go module proxy (about a minute on 2 cores, once)"
  local tmp=$1
  # GOFLAGS=-mod=mod lets `go build` record the dependencies' sums in the wrapper's go.sum.
  if ! (cd "$work" &&
    go mod init podium.invalid/krew-build >/dev/null 2>&1 &&
    go get "${KREW_MODULE}@${KREW_VERSION}" &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" "${KREW_MODULE}/cmd/krew"); then
    log "building krew ${KREW_VERSION} failed (see the output above)"
    return 1
  fi
}

provision "$BIN" build
