#!/usr/bin/env bash
# The Podium demo on a local kwok cluster (make demo / make demo-down).
#
# Usage: hack/demo.sh up     provision the binaries, build the manager, create (or reuse) the kwok
#                            cluster, install the CRDs, (re)start the manager in the background,
#                            tell the story of config/samples (promotion by the gates, archive,
#                            the prediction Deployment, rollback by kubectl patch, a failed rollout
#                            rolled back automatically, a canary rollout), show the result and the commands to try
#                            next; the cluster stays up
#        hack/demo.sh down   stop the manager and delete the cluster (a no-op when nothing runs)
#
# The manager's pid and log files live in $PODIUM_DEMO_DIR (default: <podium cache>/demo), the
# cluster in hack/kwok-cluster.sh's workdir; nothing is written into the repository except bin/.
# PODIUM_DEMO_PROBE_ADDR sets the manager's health probe address (default 127.0.0.1:18081);
# PODIUM_DEMO_SAMPLES another directory holding the sample files (default config/samples).
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
  # Leader election is off: the demo runs one manager, and 'up' stops the old one (stop_manager)
  # before it starts the next, which would otherwise wait out a killed manager's Lease.
  KUBECONFIG="$KUBECONFIG_PATH" setsid "$MANAGER" \
    --leader-elect=false \
    --health-probe-bind-address="$PROBE_ADDR" \
    --metrics-bind-address=0 \
    </dev/null >"$LOG_FILE" 2>&1 &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  local i
  for ((i = 0; i < WAIT_SECONDS; i++)); do
    # kill -0, not manager_pid: until the background child has exec'd the manager, its command
    # line is still this script's.
    if ! kill -0 "$pid" 2>/dev/null; then
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

NS="pokemon"
MODEL="battle-winner-predictor"

# step prints a headline for one part of the story.
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# wait_for KIND/NAME JSONPATH VALUE waits until the operator has written VALUE at JSONPATH.
wait_for() {
  kubectl wait -n "$NS" --for=jsonpath="$2"="$3" --timeout="${WAIT_SECONDS}s" "$1" >/dev/null ||
    die "$1 did not reach $2=$3 within ${WAIT_SECONDS}s; the manager log is $LOG_FILE"
}

versions() { kubectl get -n "$NS" modelversions -o wide >&2; }

# podium runs the kubectl podium plugin (bin/kubectl-podium) through the real kubectl.
podium() { KUBECONFIG="$KUBECONFIG_PATH" PATH="$ROOT/bin:$BIN:$PATH" "$BIN/kubectl" podium -n "$NS" "$@" >&2; }

# serves waits until the prediction Deployment serves VERSION on every replica.
serves() {
  wait_for "registeredmodel/$MODEL" '{.status.serving.version}' "$1"
  kubectl get -n "$NS" deployment "$MODEL-predictor" \
    -o jsonpath='  deployment {.metadata.name}: {.status.availableReplicas} pods available, MODEL_URI={.spec.template.spec.containers[0].env[?(@.name=="MODEL_URI")].value}{"\n"}' >&2
}

# story tells the seed's workflow: register versions, promote by the gates, serve the Production
# version, roll back by patch, and watch a failed rollout rolled back automatically.
story() {
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  step "A model whose versions go to Production when test_accuracy >= 0.85 and overfitting <= 0.05"
  kubectl apply -n "$NS" -f "$SAMPLES/ml_v1alpha1_registeredmodel.yaml" >&2

  step "Version 2 (test_accuracy 0.8203) fails the gate and stays None"
  kubectl apply -n "$NS" -f "$SAMPLES/ml_v1alpha1_modelversion_2.yaml" >&2
  wait_for "modelversion/$MODEL-2" '{.status.stage}' None
  kubectl get -n "$NS" modelversion "$MODEL-2" \
    -o jsonpath='{.status.conditions[?(@.type=="GatesPassed")].message}{"\n"}' >&2

  step "Version 3 (0.8512) passes, becomes Production, and the prediction Deployment serves it"
  kubectl apply -n "$NS" -f "$SAMPLES/ml_v1alpha1_modelversion_3.yaml" >&2
  wait_for "registeredmodel/$MODEL" '{.status.productionVersion}' 3
  serves 3

  step "Version 4 (0.8723) replaces it; version 3 is Archived and the Deployment rolls to version 4"
  kubectl apply -n "$NS" -f "$SAMPLES/ml_v1alpha1_modelversion_4.yaml" >&2
  wait_for "registeredmodel/$MODEL" '{.status.productionVersion}' 4
  wait_for "modelversion/$MODEL-3" '{.status.stage}' Archived
  serves 4
  podium compare "$MODEL"

  step "Roll back to version 3 with one command"
  echo "kubectl patch modelversion $MODEL-3 -n $NS --type=merge -p '{\"spec\":{\"stage\":\"Production\"}}'" >&2
  kubectl patch modelversion "$MODEL-3" -n "$NS" --type=merge -p '{"spec":{"stage":"Production"}}' >&2
  wait_for "registeredmodel/$MODEL" '{.status.productionVersion}' 3
  wait_for "modelversion/$MODEL-4" '{.status.stage}' Archived
  serves 3

  step "Version 5 passes the gates, but its pods never become ready: Podium rolls back to version 3"
  echo "kubectl podium register $MODEL --uri s3://ml-artifacts/never-ready/5/ --metric test_accuracy=0.8801 --metric overfitting=0.0201" >&2
  podium register "$MODEL" --uri s3://ml-artifacts/never-ready/5/ --metric test_accuracy=0.8801 --metric overfitting=0.0201
  wait_for "registeredmodel/$MODEL" '{.status.productionVersion}' 5
  echo "  version 5 is Production; its rollout has 15 s to finish..." >&2
  wait_for "modelversion/$MODEL-5" '{.status.stage}' Archived
  serves 3

  step "Canary rollouts: version 6 first runs on half of the pods, then becomes Production"
  echo "kubectl patch registeredmodel $MODEL -n $NS --type=merge -p '{\"spec\":{\"serving\":{\"rollout\":{\"strategy\":\"Canary\",\"steps\":[{\"weight\":50,\"duration\":\"5s\"}]}}}}'" >&2
  kubectl patch registeredmodel "$MODEL" -n "$NS" --type=merge \
    -p '{"spec":{"serving":{"rollout":{"strategy":"Canary","steps":[{"weight":50,"duration":"5s"}]}}}}' >&2
  podium register "$MODEL" --uri s3://ml-artifacts/battle-winner/6/ --metric test_accuracy=0.8911 --metric overfitting=0.0188
  wait_for "registeredmodel/$MODEL" '{.status.rollout.phase}' Progressing
  kubectl get -n "$NS" registeredmodel "$MODEL" >&2
  wait_for "registeredmodel/$MODEL" '{.status.productionVersion}' 6
  serves 6
  echo "  with online gates from Prometheus, a failing metric would have sent the traffic back to version 3: docs/progressive-delivery.md" >&2

  step "The history, with kubectl podium"
  podium history "$MODEL"
}

show() {
  echo
  kubectl get registeredmodels,modelversions,deployments -A
  cat <<EOF

The Podium demo is running: kwok cluster '$CLUSTER', manager pid $(cat "$PID_FILE").
Try next, in this shell:
  export KUBECONFIG=$KUBECONFIG_PATH PATH=$ROOT/bin:$BIN:\$PATH
  kubectl get registeredmodels,modelversions -n $NS
  kubectl describe registeredmodel $MODEL -n $NS
  kubectl podium status $MODEL -n $NS
  kubectl patch modelversion $MODEL-4 -n $NS --type=merge -p '{"spec":{"stage":"Production"}}'
  kubectl get events -n $NS
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
  # A rerun starts the story again from a clean namespace.
  kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
  story
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
