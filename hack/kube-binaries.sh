#!/usr/bin/env bash
# Supplies the pinned Kubernetes binaries that the tests and the demo run on:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and kwokctl.
#
# It tries the official release downloads first and, where they cannot be reached (no internet),
# builds the same versions from the Go module proxy. The result is cached outside the repository:
#
#   $PODIUM_CACHE_DIR/k8s/<k8s-version>-<os>-<arch>/   (default $XDG_CACHE_HOME/podium or ~/.cache/podium)
#
# which is the layout setup-envtest uses, so KUBEBUILDER_ASSETS can point straight at it.
# Usage: hack/kube-binaries.sh          provisions the binaries and prints the directory
#        hack/kube-binaries.sh --dir    prints the directory only, provisioning nothing
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.7.0}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"

CACHE_ROOT="${PODIUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podium}"
DIR="$CACHE_ROOT/k8s/${K8S_VERSION}-${GOOS}-${GOARCH}"
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_BINS=("${KUBE_BINS[@]}" etcd kwok kwokctl)

if [[ "${1:-}" == "--dir" ]]; then
  echo "$DIR"
  exit 0
fi

log() { echo "kube-binaries: $*" >&2; }

missing() {
  local b
  for b in "$@"; do [[ -x "$DIR/$b" ]] || echo "$b"; done
}

# install_file SRC NAME moves a finished binary into the cache atomically, so the cache never
# holds a half-written file.
install_file() {
  chmod +x "$1"
  mv -f "$1" "$DIR/$2"
}

download() { # download NAME URL: true when the binary was fetched
  local tmp="$DIR/.tmp.$1.$$"
  if curl -fsSL --connect-timeout 5 --max-time 300 -o "$tmp" "$2" 2>/dev/null; then
    install_file "$tmp" "$1"
    log "downloaded $1"
    return 0
  fi
  rm -f "$tmp"
  return 1
}

download_release() {
  local b
  for b in "${KUBE_BINS[@]}"; do
    [[ -x "$DIR/$b" ]] && continue
    download "$b" "https://dl.k8s.io/release/v${K8S_VERSION}/bin/${GOOS}/${GOARCH}/$b" || return 1
  done
  if [[ ! -x "$DIR/etcd" ]]; then
    local tmpdir
    tmpdir="$(mktemp -d)"
    local name="etcd-v${ETCD_VERSION}-${GOOS}-${GOARCH}"
    if curl -fsSL --connect-timeout 5 --max-time 300 \
      "https://github.com/etcd-io/etcd/releases/download/v${ETCD_VERSION}/${name}.tar.gz" 2>/dev/null |
      tar -xz -C "$tmpdir" 2>/dev/null; then
      install_file "$tmpdir/$name/etcd" etcd
      log "downloaded etcd"
    fi
    rm -rf "$tmpdir"
    [[ -x "$DIR/etcd" ]] || return 1
  fi
}

# build_from_proxy builds the Kubernetes binaries and etcd from the Go module proxy, in a
# throw-away module that requires k8s.io/kubernetes and points every staging module at its
# release, exactly as k8s.io/kubernetes's own replace block lists them.
build_from_proxy() (
  # A subshell, so that the EXIT trap removes the work directory however the build ends.
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "building Kubernetes v${K8S_VERSION} and etcd v${ETCD_VERSION} from the Go module proxy (about 8 minutes on 2 cores, once)"
  local gomod
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  [[ -f "$gomod" ]] || { log "cannot download k8s.io/kubernetes@v${K8S_VERSION} from the Go module proxy"; return 1; }
  local staging_version="v0.${K8S_VERSION#*.}"
  {
    echo "module podium.dev/kube-binaries"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//').0"
    echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    echo "require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$gomod" | awk '/=> \.\/staging/ {print "\t" $1 " => " $1 " '"$staging_version"'"}'
    echo ")"
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$work" && GOFLAGS=-mod=mod go mod download) || { log "downloading the modules for the Kubernetes build failed"; return 1; }

  local minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor}"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date}"
  done

  mkdir -p "$work/out"
  local b
  for b in "${KUBE_BINS[@]}"; do
    [[ -x "$DIR/$b" ]] && continue
    log "building $b"
    if ! (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$work/out/$b" "k8s.io/kubernetes/cmd/$b"); then
      log "building $b v${K8S_VERSION} failed (see the compiler output above)"
      return 1
    fi
    install_file "$work/out/$b" "$b"
  done
  if [[ ! -x "$DIR/etcd" ]]; then
    log "building etcd"
    if ! (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$work/out/etcd" go.etcd.io/etcd/server/v3); then
      log "building etcd v${ETCD_VERSION} failed (see the compiler output above)"
      return 1
    fi
    install_file "$work/out/etcd" etcd
  fi
)

install_kwok() {
  local b tmpbin
  for b in kwok kwokctl; do
    [[ -x "$DIR/$b" ]] && continue
    if download "$b" "https://github.com/kubernetes-sigs/kwok/releases/download/v${KWOK_VERSION}/${b}-${GOOS}-${GOARCH}"; then
      continue
    fi
    log "building $b v${KWOK_VERSION} from the Go module proxy"
    tmpbin="$(mktemp -d)"
    if ! GOBIN="$tmpbin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/$b@v${KWOK_VERSION}"; then
      rm -rf "$tmpbin"
      log "building $b v${KWOK_VERSION} failed (see the compiler output above)"
      return 1
    fi
    install_file "$tmpbin/$b" "$b"
    rm -rf "$tmpbin"
  done
}

main() {
  mkdir -p "$DIR"
  if [[ -z "$(missing "${ALL_BINS[@]}")" ]]; then
    echo "$DIR"
    return 0
  fi
  # One provisioner at a time: a second run waits here, then finds the binaries in place.
  exec 9>"$DIR/.lock"
  if ! flock -n 9; then
    log "another run is provisioning $DIR; waiting for it"
    flock 9
  fi
  rm -f "$DIR"/.tmp.*
  if [[ -n "$(missing "${KUBE_BINS[@]}" etcd)" ]]; then
    if [[ "${PODIUM_BUILD_ONLY:-}" == "1" ]] || ! download_release; then
      [[ "${PODIUM_BUILD_ONLY:-}" == "1" ]] || log "release downloads are not reachable; building instead"
      build_from_proxy
    fi
  fi
  install_kwok
  local left
  left="$(missing "${ALL_BINS[@]}")"
  if [[ -n "$left" ]]; then
    log "still missing after provisioning: $left"
    return 1
  fi
  log "all binaries ready in $DIR"
  echo "$DIR"
}

main
