#!/usr/bin/env bash
# The Podium demo on a local kwok cluster (make demo / make demo-down).
#
# Usage: hack/demo.sh up     provision the binaries (Prometheus included), build the manager and the
#                            demo exporter, create (or reuse) the kwok cluster, install the CRDs,
#                            (re)start the manager, the exporter and Prometheus in the background,
#                            tell the story of config/samples (promotion by the gates, archive, the
#                            prediction Deployment, rollback by kubectl patch, a failed rollout rolled
#                            back automatically, then two canaries judged by Prometheus: one promoted,
#                            one aborted), show the result and the commands to try next; it all stays up
#        hack/demo.sh down   stop the manager, the exporter and Prometheus, and delete the cluster (a
#                            no-op when nothing runs)
#
# kwok's pods serve no traffic, so the error ratio each version reports comes from the demo exporter
# (hack/demo-exporter), which serves a file the story writes; Prometheus scrapes it every second.
# The pid and log files of the three processes, the exporter's file and Prometheus's configuration
# and data live in $PODIUM_DEMO_DIR (default: <podium cache>/demo), the cluster in
# hack/kwok-cluster.sh's workdir; nothing is written into the repository except bin/.
# Loopback addresses: PODIUM_DEMO_PROBE_ADDR (the manager's health probes, default 127.0.0.1:18081),
# PODIUM_DEMO_EXPORTER_ADDR (default 127.0.0.1:18082), PODIUM_DEMO_PROMETHEUS_ADDR (default
# 127.0.0.1:18090). PODIUM_DEMO_SAMPLES names another directory holding the sample files (default
# config/samples).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="podium-demo"
CACHE_ROOT="${PODIUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podium}"
DEMO_DIR="${PODIUM_DEMO_DIR:-$CACHE_ROOT/demo}"
LOG_FILE="$DEMO_DIR/manager.log"
MANAGER="$ROOT/bin/manager"
EXPORTER="$ROOT/bin/demo-exporter"
PROBE_ADDR="${PODIUM_DEMO_PROBE_ADDR:-127.0.0.1:18081}"
EXPORTER_ADDR="${PODIUM_DEMO_EXPORTER_ADDR:-127.0.0.1:18082}"
PROMETHEUS_ADDR="${PODIUM_DEMO_PROMETHEUS_ADDR:-127.0.0.1:18090}"
METRICS_FILE="$DEMO_DIR/exporter/metrics.prom"
PROMETHEUS_CONFIG="$DEMO_DIR/prometheus/prometheus.yml"
SAMPLES="${PODIUM_DEMO_SAMPLES:-$ROOT/config/samples}"
WAIT_SECONDS=120

log() { echo "demo: $*" >&2; }
die() { log "$*"; exit 1; }

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# demo_pid NAME MATCH prints the pid in $DEMO_DIR/NAME.pid when that process runs and its command
# line contains MATCH: the pid may have been reused by another program.
demo_pid() {
  local file="$DEMO_DIR/$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "$2" >/dev/null || return 1
  echo "$pid"
}

# stop NAME MATCH stops the demo's process NAME (see demo_pid): SIGTERM, then SIGKILL after 30 s.
stop() {
  local pid i
  if pid="$(demo_pid "$1" "$2")"; then
    log "stopping the $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DEMO_DIR/$1.pid"
}

# The command lines that identify the demo's processes.
MANAGER_MATCH="$MANAGER "
EXPORTER_MATCH="$EXPORTER "
PROMETHEUS_MATCH="--config.file=$PROMETHEUS_CONFIG "

stop_all() {
  stop manager "$MANAGER_MATCH"
  stop exporter "$EXPORTER_MATCH"
  stop prometheus "$PROMETHEUS_MATCH"
}

# start NAME URL CMD... runs CMD in the background with its log in $DEMO_DIR/NAME.log and its pid in
# $DEMO_DIR/NAME.pid, and waits until URL answers.
start() {
  local name=$1 url=$2
  shift 2
  local log_file="$DEMO_DIR/$name.log"
  mkdir -p "$DEMO_DIR"
  # Something else answering there would pass for the new process.
  if curl -sS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
    die "something already answers on $url; stop it, or give the $name another address (see the top of $0)"
  fi
  log "starting the $name (log: $log_file)"
  # A session of its own, so the process outlives make and no terminal signal reaches it.
  setsid "$@" </dev/null >"$log_file" 2>&1 &
  local pid=$!
  echo "$pid" >"$DEMO_DIR/$name.pid"
  local i
  for ((i = 0; i < WAIT_SECONDS; i++)); do
    # kill -0, not demo_pid: until the background child has exec'd the command, its command line
    # is still this script's.
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$log_file" >&2 || true
      die "the $name exited; its log is $log_file"
    fi
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  die "the $name did not answer on $url; its log is $log_file"
}

start_manager() {
  # Leader election is off: the demo runs one manager, and 'up' stops the old one (stop_all)
  # before it starts the next, which would otherwise wait out a killed manager's Lease.
  KUBECONFIG="$KUBECONFIG_PATH" start manager "http://$PROBE_ADDR/readyz" "$MANAGER" \
    --leader-elect=false \
    --health-probe-bind-address="$PROBE_ADDR" \
    --metrics-bind-address=0
}

# start_prometheus starts the exporter with no series, and a Prometheus with an empty TSDB that
# scrapes it every second.
start_prometheus() {
  mkdir -p "$(dirname "$METRICS_FILE")" "$(dirname "$PROMETHEUS_CONFIG")"
  : >"$METRICS_FILE"
  start exporter "http://$EXPORTER_ADDR/metrics" "$EXPORTER" --listen "$EXPORTER_ADDR" --file "$METRICS_FILE"
  cat >"$PROMETHEUS_CONFIG" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: podium-demo-exporter
    static_configs:
      - targets: ["$EXPORTER_ADDR"]
EOF
  rm -rf "$DEMO_DIR/prometheus/data"
  start prometheus "http://$PROMETHEUS_ADDR/-/ready" "$PROMETHEUS" \
    --config.file="$PROMETHEUS_CONFIG" \
    --storage.tsdb.path="$DEMO_DIR/prometheus/data" \
    --web.listen-address="$PROMETHEUS_ADDR" \
    --log.level=warn
}

# set_error_ratio VERSION RATIO makes the exporter report RATIO as VERSION's error ratio, and waits
# until Prometheus has scraped it, so that the canary's first measurement finds it.
set_error_ratio() {
  local series="podium_demo_error_ratio{version=\"$1\"}" i
  {
    echo "# HELP podium_demo_error_ratio The share of a version's answers that were errors, set by the demo."
    echo "# TYPE podium_demo_error_ratio gauge"
    grep '^podium_demo_error_ratio{' "$METRICS_FILE" | grep -vF "$series " || true
    echo "$series $2"
  } >"$METRICS_FILE.tmp"
  mv "$METRICS_FILE.tmp" "$METRICS_FILE"
  echo "  the exporter reports $series $2; waiting for Prometheus to scrape it" >&2
  for ((i = 0; i < 30; i++)); do
    if curl -fsS -G --max-time 2 --data-urlencode "query=$series" "http://$PROMETHEUS_ADDR/api/v1/query" 2>/dev/null |
      grep -F ",\"$2\"]" >/dev/null; then
      return 0
    fi
    sleep 1
  done
  die "Prometheus on $PROMETHEUS_ADDR did not scrape $series $2 within 30s; see $DEMO_DIR/prometheus.log"
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

  step "Online gates: canaries judged by Prometheus on the error ratio each version reports"
  echo "  kwok's pods serve no traffic: the demo exporter on $EXPORTER_ADDR reports the ratios the demo sets," >&2
  echo "  and Prometheus on $PROMETHEUS_ADDR scrapes it every second" >&2
  local rollout
  rollout="$(cat <<EOF
spec:
  serving:
    rollout:
      strategy: Canary
      steps: [{weight: 50, duration: 5s}]
      analysis:
        prometheus: {address: http://$PROMETHEUS_ADDR}
        interval: 1s
        metrics: [{name: error-rate, query: 'max(podium_demo_error_ratio{version="{{.Version}}"})', max: 0.01}]
EOF
)"
  echo "kubectl patch registeredmodel $MODEL -n $NS --type=merge -p '" >&2
  echo "$rollout'" >&2
  kubectl patch registeredmodel "$MODEL" -n "$NS" --type=merge -p "$rollout" >&2

  step "Version 6 (error ratio 0.002, within 0.01) runs on half of the pods for 5 s, then becomes Production"
  set_error_ratio 6 0.002
  podium register "$MODEL" --uri s3://ml-artifacts/battle-winner/6/ --metric test_accuracy=0.8911 --metric overfitting=0.0188
  wait_for "registeredmodel/$MODEL" '{.status.rollout.phase}' Progressing
  kubectl get -n "$NS" registeredmodel "$MODEL" >&2
  wait_for "registeredmodel/$MODEL" '{.status.productionVersion}' 6
  serves 6
  podium status "$MODEL"

  step "Version 7 (error ratio 0.2) fails its online gate: it is Archived and all traffic goes back to version 6"
  set_error_ratio 7 0.2
  podium register "$MODEL" --uri s3://ml-artifacts/battle-winner/7/ --metric test_accuracy=0.9012 --metric overfitting=0.0175
  wait_for "modelversion/$MODEL-7" '{.status.stage}' Archived
  kubectl get -n "$NS" registeredmodel "$MODEL" >&2
  kubectl get -n "$NS" registeredmodel "$MODEL" \
    -o jsonpath='  history: version {.status.history[-1].version} {.status.history[-1].to}, {.status.history[-1].reason}: {.status.history[-1].message}{"\n"}' >&2
  kubectl wait -n "$NS" --for=delete --timeout="${WAIT_SECONDS}s" "deployment/$MODEL-predictor-canary" >/dev/null 2>&1 ||
    die "the canary Deployment of version 7 was not removed within ${WAIT_SECONDS}s; the manager log is $LOG_FILE"
  serves 6

  step "The history, with kubectl podium"
  podium history "$MODEL"
}

show() {
  echo
  kubectl get registeredmodels,modelversions,deployments -A
  cat <<EOF

The Podium demo is running: kwok cluster '$CLUSTER', manager pid $(cat "$DEMO_DIR/manager.pid"),
Prometheus http://$PROMETHEUS_ADDR (pid $(cat "$DEMO_DIR/prometheus.pid")) scraping the exporter
http://$EXPORTER_ADDR/metrics (pid $(cat "$DEMO_DIR/exporter.pid")), which serves $METRICS_FILE.
Try next, in this shell:
  export KUBECONFIG=$KUBECONFIG_PATH PATH=$ROOT/bin:$BIN:\$PATH
  kubectl get registeredmodels,modelversions -n $NS
  kubectl describe registeredmodel $MODEL -n $NS
  kubectl podium status $MODEL -n $NS
  kubectl podium dashboard -n $NS    # the registry in a browser: open the URL it prints
  kubectl patch modelversion $MODEL-4 -n $NS --type=merge -p '{"spec":{"stage":"Production"}}'
  kubectl get events -n $NS
  curl -sG http://$PROMETHEUS_ADDR/api/v1/query --data-urlencode 'query=podium_demo_error_ratio'
  tail -f $LOG_FILE
Stop it all with: make demo-down
EOF
}

up() {
  BIN="$("$ROOT/hack/kube-binaries.sh")"
  PROMETHEUS="$("$ROOT/hack/prometheus.sh")"
  # The running processes go first, so the builds can replace their binaries.
  stop_all
  log "building the manager and the demo exporter"
  make -C "$ROOT" build >&2
  go build -C "$ROOT" -o "$EXPORTER" ./hack/demo-exporter
  KUBECONFIG_PATH="$(PODIUM_KUBE_BIN_DIR="$BIN" "$ROOT/hack/kwok-cluster.sh" up "$CLUSTER")"
  log "installing the CRDs"
  kubectl apply --server-side -f "$ROOT/config/crd/bases" >&2
  kubectl wait --for=condition=Established --timeout=60s -f "$ROOT/config/crd/bases" >&2
  start_manager
  start_prometheus
  # A rerun starts the story again from a clean namespace.
  kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
  story
  show
}

down() {
  stop_all
  "$ROOT/hack/kwok-cluster.sh" down "$CLUSTER"
  log "demo stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    sed -n '4,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
