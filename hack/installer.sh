#!/usr/bin/env bash
# Renders dist/install.yaml's content, for `kubectl apply` users: config/default with the manager
# image set to IMG, and the prediction pods' fetcher (--fetcher-image) set to the same image, so
# that a digest-pinned IMG pins both. config/ itself is left as it is: the overlay is a temporary
# directory in config/ (kustomize takes bases by relative path only), removed on exit and ignored
# by git.
#
# Usage: hack/installer.sh IMG    (such as ghcr.io/podium-dev/podium:0.1.0@sha256:...)
set -euo pipefail
IMG="${1:?usage: hack/installer.sh IMG, such as ghcr.io/podium-dev/podium:0.1.0@sha256:...}"
KUSTOMIZE="${KUSTOMIZE:-$(dirname "${BASH_SOURCE[0]}")/../bin/kustomize}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

OVERLAY="$(mktemp -d "$ROOT/config/.installer.XXXXXX")"
trap 'rm -rf "$OVERLAY"' EXIT
cat >"$OVERLAY/kustomization.yaml" <<YAML
resources:
- ../default
patches:
- target: {kind: Deployment, name: podium-controller-manager}
  patch: |-
    - op: replace
      path: /spec/template/spec/containers/0/image
      value: "$IMG"
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: "--fetcher-image=$IMG"
YAML
"$KUSTOMIZE" build "$OVERLAY"
