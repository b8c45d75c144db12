#!/usr/bin/env bash
# Starts a single-node Capstan cluster from the build in bazel-bin: the apiserver (embedded
# RocksDB), the controller-manager and the scheduler. State lives in .capstan/ (data, logs, pids); a client
# config is written to ~/.capstan/config so that capstanctl needs no flags. Idempotent: services
# already running are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="$PWD/.capstan"
mkdir -p "$STATE/data" "$STATE/logs" "$STATE/run"
LISTEN="${CAPSTAN_LISTEN:-127.0.0.1:6443}"
METRICS="${CAPSTAN_METRICS_LISTEN:-127.0.0.1:6444}"
CM_METRICS="${CAPSTAN_CM_METRICS_LISTEN:-127.0.0.1:10257}"
SCHED_METRICS="${CAPSTAN_SCHEDULER_METRICS_LISTEN:-127.0.0.1:10259}"

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# start_service NAME BINARY ARGS...: runs BINARY in the background with --address_file and waits
# until it has written it (it is serving), or fails with the end of its log.
start_service() {
  local name=$1 binary=$2
  shift 2
  local pidfile="$STATE/run/$name.pid" addresses="$STATE/run/$name.addresses"
  if running "$pidfile"; then
    echo "$name already running (pid $(cat "$pidfile"))"
    return
  fi
  rm -f "$addresses"
  nohup "$binary" --address_file="$addresses" "$@" >>"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    [ -f "$addresses" ] && break
    if ! running "$pidfile"; then
      echo "$name failed to start; last log lines:" >&2
      tail -n 20 "$STATE/logs/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -f "$addresses" ] || { echo "$name did not become ready" >&2; exit 1; }
  echo "$name started (pid $(cat "$pidfile")), log: .capstan/logs/$name.log"
}

start_service apiserver bazel-bin/services/apiserver/capstan-apiserver \
  --data_dir="$STATE/data/apiserver" --listen="$LISTEN" --metrics_listen="$METRICS"
GRPC=$(sed -n 's/^grpc=//p' "$STATE/run/apiserver.addresses")

start_service controller-manager bazel-bin/services/controller-manager/capstan-controller-manager \
  --server="$GRPC" --metrics_listen="$CM_METRICS"
start_service scheduler bazel-bin/services/scheduler/capstan-scheduler \
  --server="$GRPC" --metrics_listen="$SCHED_METRICS"

mkdir -p "$HOME/.capstan"
printf 'server: %s\n' "$GRPC" >"$HOME/.capstan/config"

cat <<MSG
Capstan is up: API on $GRPC, metrics on http://$METRICS/metrics
Client config: ~/.capstan/config
Try:  bazel-bin/tools/capstanctl/capstanctl apply -f test/fixtures/manifests/deployment-seed.yaml
      bazel-bin/tools/capstanctl/capstanctl get pods   # Pending until a node exists
Stop: make down
MSG
