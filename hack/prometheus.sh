#!/usr/bin/env bash
# Supplies the pinned Prometheus server binary (prometheus), the real Prometheus that the tests of
# the online analysis gates (internal/analysis) query.
#
# Prometheus publishes no release download reachable here, so this builds its command from the Go
# module proxy, in a throwaway wrapper module that requires the pinned version (its go.mod has no
# replace directives, so the wrapper builds it as its own module would). The result is cached
# outside the repository:
#
#   $PODIUM_CACHE_DIR/prometheus/<version>-<os>-<arch>/prometheus   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# The tests need the query API and static_configs scraping only, so the build leaves out what they
# do not: the tag remove_all_sd drops every service discovery but file and http (plugins/, the cloud
# SDKs are most of the dependency graph), and without the tag builtinassets the web UI's assets are
# not embedded (the web UI has no pages; the API is unaffected).
# Measured on 2 cores with Go 1.26.8 for v0.316.0, from an empty build cache (and the module
# downloads not shared with Podium's own): 2 min 57 s wall (142 s user CPU), a 50 MB binary
# (52,146,338 bytes, stripped). Without the tag the same build takes 372 s of user CPU (2.6 times as
# much) and makes a 105 MB binary. What stays big is remote write's cloud authentication (AWS,
# Azure, Google SDKs) and OpenTelemetry, which no build tag removes.
#
# Usage: hack/prometheus.sh          provisions the binary and prints its path
#        hack/prometheus.sh --path   prints the path only, provisioning nothing
#        hack/prometheus.sh --dir    prints its cache directory only, provisioning nothing
set -euo pipefail

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PROMETHEUS_MODULE="github.com/prometheus/prometheus"
PROMETHEUS_TAGS="remove_all_sd"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

# shellcheck source=lib/provision.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/provision.sh"
DIR="$PODIUM_CACHE_ROOT/prometheus/${PROMETHEUS_VERSION}-${GOOS}-${GOARCH}"
BIN="$DIR/prometheus"

case "${1:-}" in
--path)
  echo "$BIN"
  exit 0
  ;;
--dir)
  echo "$DIR"
  exit 0
  ;;
esac

log() { echo "prometheus: $*" >&2; }

build() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  local work="$WORK"
  log "building ${PROMETHEUS_MODULE}/cmd/prometheus ${PROMETHEUS_VERSION} (tags: ${PROMETHEUS_TAGS}) from the Go module proxy (about 3 minutes on 2 cores, once)"
  local tmp=$1
  # GOFLAGS=-mod=mod lets `go build` record the dependencies' sums in the wrapper's go.sum.
  if ! (cd "$work" &&
    go mod init podium.invalid/prometheus-build >/dev/null 2>&1 &&
    go get "${PROMETHEUS_MODULE}@${PROMETHEUS_VERSION}" &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags "$PROMETHEUS_TAGS" -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" -o "$tmp" "${PROMETHEUS_MODULE}/cmd/prometheus"); then
    log "building Prometheus ${PROMETHEUS_VERSION} failed (see the output above)"
    return 1
  fi
}

provision "$BIN" build
