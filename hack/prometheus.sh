#!/usr/bin/env bash
# Supplies the pinned Prometheus server binary (prometheus), the real Prometheus that the tests of
# the online analysis gates (internal/analysis) query, and promtool from the same version, which
# checks the alert rules that docs/operations.md documents (test/alertrules).
#
# Prometheus publishes no release download reachable here, so this builds its command from the Go
# module proxy, in a throwaway wrapper module that requires the pinned version (its go.mod has no
# replace directives, so the wrapper builds it as its own module would). The result is cached
# outside the repository:
#
#   $PODIUM_CACHE_DIR/prometheus/<version>-<os>-<arch>/prometheus   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#   $PODIUM_CACHE_DIR/prometheus/<version>-<os>-<arch>/promtool
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
# promtool, built next in the same build cache, adds 55 s of user CPU: 59 s and 80 s wall in two
# cold runs (the second beside other builds, in which prometheus itself took 302 s), a 54 MB
# binary (53,960,866 bytes, stripped). It imports Kubernetes service discovery for its sd command
# whatever the tags say; the same tags let it reuse the packages compiled for prometheus.
#
# Usage: hack/prometheus.sh              provisions both binaries and prints prometheus' path
#        hack/prometheus.sh --path       prints prometheus' path only, provisioning nothing
#        hack/prometheus.sh --promtool   prints promtool's path only, provisioning nothing
#        hack/prometheus.sh --dir        prints their cache directory only, provisioning nothing
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
PROMTOOL="$DIR/promtool"

case "${1:-}" in
--path)
  echo "$BIN"
  exit 0
  ;;
--promtool)
  echo "$PROMTOOL"
  exit 0
  ;;
--dir)
  echo "$DIR"
  exit 0
  ;;
esac

log() { echo "prometheus: $*" >&2; }

# wrapper prepares, once per run, the throwaway module that requires the pinned version; both
# binaries are built in it.
WORK=""
wrapper() {
  if [[ -n "$WORK" ]]; then
    return 0
  fi
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  (cd "$WORK" &&
    go mod init podium.invalid/prometheus-build >/dev/null 2>&1 &&
    go get "${PROMETHEUS_MODULE}@${PROMETHEUS_VERSION}")
}

# gobuild CMD OUT builds ${PROMETHEUS_MODULE}/cmd/CMD into OUT.
gobuild() {
  local cmd=$1 out=$2
  # GOFLAGS=-mod=mod lets `go build` record the dependencies' sums in the wrapper's go.sum.
  if ! wrapper || ! (cd "$WORK" &&
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags "$PROMETHEUS_TAGS" -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" -o "$out" "${PROMETHEUS_MODULE}/cmd/${cmd}"); then
    log "building ${cmd} ${PROMETHEUS_VERSION} failed (see the output above)"
    return 1
  fi
}

build_prometheus() {
  log "building ${PROMETHEUS_MODULE}/cmd/prometheus ${PROMETHEUS_VERSION} (tags: ${PROMETHEUS_TAGS}) from the Go module proxy (about 3 minutes on 2 cores, once)"
  gobuild prometheus "$1"
}

build_promtool() {
  log "building ${PROMETHEUS_MODULE}/cmd/promtool ${PROMETHEUS_VERSION} from the Go module proxy (about a minute more, once)"
  gobuild promtool "$1"
}

provision "$BIN" build_prometheus
provision "$PROMTOOL" build_promtool >/dev/null
