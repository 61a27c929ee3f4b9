#!/usr/bin/env bash
# Runs local kwok clusters on the pinned binaries from hack/kube-binaries.sh, never downloading
# anything: kwokctl's binary runtime is pointed at the cached kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd and kwok, and kubectl is taken from the same place.
#
# Usage: hack/kwok-cluster.sh up NAME          create NAME (or reuse it when healthy, or recreate it
#                                              when broken), add fake nodes, wait for the API,
#                                              print the kubeconfig path
#        hack/kwok-cluster.sh down NAME        delete NAME (a no-op when it does not exist)
#        hack/kwok-cluster.sh kubeconfig NAME  print the kubeconfig path of NAME
#
# All kwok state (cluster workdirs, component logs, pids, etcd data) lives outside the repository in
#   $PODIUM_KWOK_WORKDIR   (default: <podium cache>/kwok, next to the binaries' cache)
# Other settings: PODIUM_KUBE_BIN_DIR (use these binaries instead of provisioning them),
# PODIUM_KWOK_NODES (number of fake nodes, default 1). Progress goes to stderr; stdout carries only
# the kubeconfig path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${PODIUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podium}"
export KWOK_WORKDIR="${PODIUM_KWOK_WORKDIR:-$CACHE_ROOT/kwok}"
NODES="${PODIUM_KWOK_NODES:-1}"
KWOK_VERSION="v${KWOK_VERSION:-0.8.0}" # the stages come from this kwok release, as the binaries do

log() { echo "kwok-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

cluster_dir() { echo "$KWOK_WORKDIR/clusters/$1"; }
kubeconfig_path() { echo "$(cluster_dir "$1")/kubeconfig.yaml"; }

# bin_dir provisions the binaries (a no-op when cached) unless PODIUM_KUBE_BIN_DIR names them.
bin_dir() {
  if [[ -n "${PODIUM_KUBE_BIN_DIR:-}" ]]; then
    echo "$PODIUM_KUBE_BIN_DIR"
  else
    "$ROOT/hack/kube-binaries.sh"
  fi
}

# kwokctl runs the cached kwokctl with stdin closed and its output in $KWOK_WORKDIR/NAME.kwokctl.log,
# shown when it fails. The lock descriptor is closed too: the components that kwokctl forks must
# not inherit (and so hold) the lock.
kwokctl() {
  local out="$KWOK_WORKDIR/$NAME.kwokctl.log"
  if ! "$BIN/kwokctl" "$@" </dev/null >"$out" 2>&1 9>&-; then
    tail -n 30 "$out" >&2
    return 1
  fi
}

kubectl() {
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"
}

api_ready() {
  [[ -f "$KUBECONFIG_PATH" ]] && kubectl --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# retry SECONDS WHAT CMD...: runs CMD once a second until it succeeds, failing after SECONDS.
retry() {
  local seconds="$1" what="$2" i
  shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  log "timed out after ${seconds}s waiting for $what"
  return 1
}

dump_logs() {
  local f
  for f in "$(cluster_dir "$NAME")"/logs/*.log; do
    [[ -f "$f" ]] || continue
    log "---- last lines of $f"
    tail -n 20 "$f" >&2 || true
  done
}

delete_cluster() {
  local dir
  dir="$(cluster_dir "$NAME")"
  [[ -d "$dir" ]] || return 0
  log "deleting cluster $NAME"
  # The --kubeconfig file never exists, so kwokctl edits no kubeconfig (~/.kube/config included).
  if ! kwokctl --name "$NAME" delete cluster --kubeconfig "$KWOK_WORKDIR/no-kubeconfig"; then
    log "kwokctl could not delete $NAME; stopping its processes and removing $dir"
    local pidfile pid
    for pidfile in "$dir"/pids/*.pid; do
      [[ -f "$pidfile" ]] || continue
      pid="$(cat "$pidfile")"
      # Only a process of this cluster (its command line names the workdir): pids get reused.
      if [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$dir/" >/dev/null; then
        kill "$pid" 2>/dev/null || true
      fi
    done
  fi
  rm -rf "$dir"
}

# stages_config writes the kwok stages of the cluster: kwok's own default node and pod stages,
# read from the kwok module, with one rule added to pod-ready: a pod whose first container's
# MODEL_URI contains "never-ready" is never marked ready. The tests and the demo use it to show
# a prediction rollout that fails.
stages_config() {
  local out="$KWOK_WORKDIR/stages-$KWOK_VERSION.yaml" src
  if [[ ! -s "$out" ]]; then
    src="$(cd "$KWOK_WORKDIR" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
    [[ -d "$src" ]] || die "cannot read the stages of sigs.k8s.io/kwok@$KWOK_VERSION from the Go module proxy"
    {
      cat "$src/kustomize/stage/node/fast/node-initialize.yaml"
      echo "---"
      cat "$src/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"
      echo "---"
      awk '{ print } /^    matchExpressions:$/ && !done {
        print "    - key: \x27.spec.containers.[0].env.[]? | select(.name == \"MODEL_URI\") | .value | if contains(\"never-ready\") then \"never-ready\" else \"ready\" end\x27"
        print "      operator: \x27NotIn\x27"
        print "      values:"
        print "      - \x27never-ready\x27"
        done = 1 }' "$src/kustomize/stage/pod/fast/pod-ready.yaml"
      echo "---"
      cat "$src/kustomize/stage/pod/fast/pod-complete.yaml"
      echo "---"
      cat "$src/kustomize/stage/pod/fast/pod-delete.yaml"
    } >"$out.tmp"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

create_cluster() {
  local version
  version="$("$BIN/kube-apiserver" --version | awk '{print $2}')"
  log "creating cluster $NAME (Kubernetes $version, binary runtime, workdir $(cluster_dir "$NAME"))"
  # Every component binary is a local path, so kwokctl links them instead of downloading; the
  # KWOK_KUBECTL_BINARY and PATH settings cover the commands that look for kubectl.
  if ! KWOK_KUBE_VERSION="$version" KWOK_KUBECTL_BINARY="$BIN/kubectl" PATH="$BIN:$PATH" \
    kwokctl --name "$NAME" create cluster \
    --runtime binary \
    --kube-apiserver-binary "$BIN/kube-apiserver" \
    --kube-controller-manager-binary "$BIN/kube-controller-manager" \
    --kube-scheduler-binary "$BIN/kube-scheduler" \
    --etcd-binary "$BIN/etcd" \
    --kwok-controller-binary "$BIN/kwok" \
    --config "$(stages_config)" \
    --kubeconfig "" \
    --quiet-pull \
    --wait 2m \
    --timeout 5m; then
    dump_logs
    delete_cluster
    die "creating cluster $NAME failed"
  fi
}

up() {
  mkdir -p "$KWOK_WORKDIR"
  # One 'up' or 'down' of a given cluster at a time.
  exec 9>"$KWOK_WORKDIR/.$NAME.lock"
  flock 9

  if [[ -d "$(cluster_dir "$NAME")" ]]; then
    if api_ready; then
      log "reusing healthy cluster $NAME"
    else
      log "cluster $NAME exists but its API does not answer; recreating it"
      delete_cluster
    fi
  fi
  [[ -d "$(cluster_dir "$NAME")" ]] || create_cluster

  retry 120 "the API server of $NAME" api_ready || { dump_logs; die "cluster $NAME is not ready"; }
  # Fake nodes, run by the kwok controller: they let the scheduler place pods and kwok marks the
  # pods Running and Ready, so Deployments become Available without a kubelet.
  kwokctl --name "$NAME" scale node --replicas "$NODES"
  retry 120 "a Ready node in $NAME" kubectl wait --for=condition=Ready node --all --timeout=5s
  # Pods of a namespace can be created once its service account exists.
  retry 120 "the default service account in $NAME" kubectl get serviceaccount default -n default
  echo "$KUBECONFIG_PATH"
}

down() {
  [[ -d "$KWOK_WORKDIR" ]] || return 0
  exec 9>"$KWOK_WORKDIR/.$NAME.lock"
  flock 9
  delete_cluster
}

[[ $# -eq 2 ]] || usage
CMD="$1"
NAME="$2"
[[ "$NAME" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || die "invalid cluster name '$NAME' (lowercase letters, digits and '-')"
KUBECONFIG_PATH="$(kubeconfig_path "$NAME")"

case "$CMD" in
  up)
    BIN="$(bin_dir)"
    up
    ;;
  down)
    BIN="${PODIUM_KUBE_BIN_DIR:-$("$ROOT/hack/kube-binaries.sh" --dir)}"
    if [[ ! -x "$BIN/kwokctl" ]]; then
      [[ -d "$(cluster_dir "$NAME")" ]] && die "no kwokctl in $BIN to delete cluster $NAME with"
      exit 0
    fi
    down
    ;;
  kubeconfig)
    echo "$KUBECONFIG_PATH"
    ;;
  *) usage ;;
esac
