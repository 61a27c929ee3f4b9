#!/usr/bin/env bash
# Copies into the Helm chart what it shares with config/, so that each has one source:
#   config/crd/bases/*.yaml (controller-gen)       -> charts/podium/crds/
#   the Roles and ClusterRoles of config/rbac/     -> charts/podium/files/rbac/, whose rules the
#   (role.yaml is controller-gen's)                   chart's templates/rbac.yaml renders
# make manifests runs it last; make verify-generated fails when its output is not committed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/podium"

rm -rf "$CHART/crds" "$CHART/files/rbac"
mkdir -p "$CHART/crds" "$CHART/files/rbac"
cp "$ROOT"/config/crd/bases/*.yaml "$CHART/crds/"
for f in "$ROOT"/config/rbac/*.yaml; do
  if grep -Eq '^kind: (Cluster)?Role$' "$f"; then
    cp "$f" "$CHART/files/rbac/"
  fi
done
