#!/usr/bin/env bash
# The Podium demo on a local kwok cluster (make demo / make demo-down).
#
# Usage: hack/demo.sh up     provision the binaries, build the manager, create (or reuse) the kwok
#                            cluster, install the CRDs, (re)start the manager in the background,
#                            apply config/samples, wait until the operator has reconciled them,
#                            show the result and the commands to try next; the cluster stays up
#        hack/demo.sh down   stop the manager and delete the cluster (a no-op when nothing runs)
#
# The manager's pid and log files live in $PODIUM_DEMO_DIR (default: <podium cache>/demo), the
# cluster in hack/kwok-cluster.sh's workdir; nothing is written into the repository except bin/.
# PODIUM_DEMO_PROBE_ADDR sets the manager's health probe address (default 127.0.0.1:18081);
# PODIUM_DEMO_SAMPLES another kustomization or manifest directory to apply (default config/samples).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="podium-demo"
CACHE_ROOT="${PODIUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podium}"
DEMO_DIR="${PODIUM_DEMO_DIR:-$CACHE_ROOT/demo}"
PID_FILE="$DEMO_DIR/manager.pid"
LOG_FILE="$DEMO_DIR/manager.log"
MANAGER="$ROOT/bin/manager"
PROBE_ADDR="${PODIUM_DEMO_PROBE_ADDR:-127.0.0.1:18081}"
SAMPLES="${PODIUM_DEMO_SAMPLES:-$ROOT/config/samples}"
WAIT_SECONDS=120

log() { echo "demo: $*" >&2; }
die() { log "$*"; exit 1; }

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# manager_pid prints the pid of the demo manager when it is running.
manager_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  # Only a process that runs this repository's manager: the pid may have been reused.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$MANAGER " >/dev/null || return 1
  echo "$pid"
}

stop_manager() {
  local pid i
  if pid="$(manager_pid)"; then
    log "stopping the manager (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
}

start_manager() {
  mkdir -p "$DEMO_DIR"
  log "starting the manager (log: $LOG_FILE)"
  # A session of its own, so the manager outlives make and no terminal signal reaches it.
  # --zap-log-level=5 makes controller-runtime log each successful reconcile (see wait_reconciled).
  KUBECONFIG="$KUBECONFIG_PATH" setsid "$MANAGER" \
    --health-probe-bind-address="$PROBE_ADDR" \
    --metrics-bind-address=0 \
    --zap-log-level=5 \
    </dev/null >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  local i
  for ((i = 0; i < WAIT_SECONDS; i++)); do
    if ! manager_pid >/dev/null; then
      tail -n 30 "$LOG_FILE" >&2 || true
      die "the manager exited; its log is $LOG_FILE"
    fi
    if curl -fsS -o /dev/null --max-time 2 "http://$PROBE_ADDR/readyz" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  die "the manager did not become ready on http://$PROBE_ADDR/readyz; its log is $LOG_FILE"
}

# reconciled NAMESPACE NAME tells whether the operator has reconciled that RegisteredModel: it
# has a Ready condition or, while the controller sets none, the manager logged a successful
# reconcile of it.
reconciled() {
  local ready
  ready="$(kubectl get registeredmodel "$2" -n "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  [[ -n "$ready" ]] && return 0
  # The log is JSON or zap's console format: "key":"value" or "key": "value".
  grep -F 'Reconcile successful' "$LOG_FILE" | grep -E '"controller": ?"registeredmodel"' |
    grep -E "\"namespace\": ?\"$1\"" | grep -E "\"name\": ?\"$2\"" >/dev/null
}

# wait_reconciled waits until the operator has reconciled every RegisteredModel. Once the
# controller sets a Ready condition, all of this becomes:
#   kubectl wait --for=condition=Ready registeredmodels --all -A --timeout="${WAIT_SECONDS}s"
wait_reconciled() {
  local models ns name i
  models="$(kubectl get registeredmodels -A \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}')"
  [[ -n "$models" ]] || die "$SAMPLES created no RegisteredModel"
  while read -r ns name; do
    log "waiting for the operator to reconcile registeredmodel $ns/$name"
    for ((i = 0; i < WAIT_SECONDS; i++)); do
      reconciled "$ns" "$name" && continue 2
      manager_pid >/dev/null || die "the manager exited; its log is $LOG_FILE"
      sleep 1
    done
    tail -n 30 "$LOG_FILE" >&2 || true
    die "registeredmodel $ns/$name was not reconciled within ${WAIT_SECONDS}s; the manager log is $LOG_FILE"
  done <<<"$models"
}

show() {
  echo
  kubectl get registeredmodels,modelversions,deployments -A
  local first k="$BIN/kubectl --kubeconfig $KUBECONFIG_PATH"
  first="$(kubectl get registeredmodels -A -o jsonpath='{.items[0].metadata.namespace} {.items[0].metadata.name}')"
  read -r first_ns first_name <<<"$first"
  cat <<EOF

The Podium demo is running: kwok cluster '$CLUSTER', manager pid $(cat "$PID_FILE").
Try next:
  $k get registeredmodels,modelversions -A
  $k describe registeredmodel $first_name -n $first_ns
  $k get registeredmodel $first_name -n $first_ns -o yaml
  $k get deployments,pods -A
  tail -f $LOG_FILE
Stop it all with: make demo-down
EOF
}

up() {
  BIN="$("$ROOT/hack/kube-binaries.sh")"
  # The running manager goes first, so the build can replace its binary.
  stop_manager
  log "building the manager"
  make -C "$ROOT" build >&2
  KUBECONFIG_PATH="$(PODIUM_KUBE_BIN_DIR="$BIN" "$ROOT/hack/kwok-cluster.sh" up "$CLUSTER")"
  log "installing the CRDs"
  kubectl apply --server-side -f "$ROOT/config/crd/bases" >&2
  kubectl wait --for=condition=Established --timeout=60s -f "$ROOT/config/crd/bases" >&2
  start_manager
  log "applying $SAMPLES"
  if [[ -f "$SAMPLES/kustomization.yaml" ]]; then
    kubectl apply -k "$SAMPLES" >&2
  else
    kubectl apply -f "$SAMPLES" >&2
  fi
  wait_reconciled
  show
}

down() {
  stop_manager
  "$ROOT/hack/kwok-cluster.sh" down "$CLUSTER"
  log "demo stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    sed -n '4,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
