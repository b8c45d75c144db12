#!/usr/bin/env bash
# Starts a single-node Capstan cluster from the build in bazel-bin: today the apiserver (embedded
# RocksDB). State lives in .capstan/ (data, logs, pids); a client config is written to
# ~/.capstan/config so that capstanctl needs no flags. Idempotent: running services are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="$PWD/.capstan"
mkdir -p "$STATE/data" "$STATE/logs" "$STATE/run"
LISTEN="${CAPSTAN_LISTEN:-127.0.0.1:6443}"
METRICS="${CAPSTAN_METRICS_LISTEN:-127.0.0.1:6444}"

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if running "$STATE/run/apiserver.pid"; then
  echo "apiserver already running (pid $(cat "$STATE/run/apiserver.pid"))"
else
  rm -f "$STATE/run/apiserver.addresses"
  nohup bazel-bin/services/apiserver/capstan-apiserver \
    --data_dir="$STATE/data/apiserver" --listen="$LISTEN" --metrics_listen="$METRICS" \
    --address_file="$STATE/run/apiserver.addresses" \
    >>"$STATE/logs/apiserver.log" 2>&1 &
  echo $! >"$STATE/run/apiserver.pid"
  for _ in $(seq 1 300); do
    [ -f "$STATE/run/apiserver.addresses" ] && break
    if ! running "$STATE/run/apiserver.pid"; then
      echo "apiserver failed to start; last log lines:" >&2
      tail -n 20 "$STATE/logs/apiserver.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -f "$STATE/run/apiserver.addresses" ] || { echo "apiserver did not become ready" >&2; exit 1; }
  echo "apiserver started (pid $(cat "$STATE/run/apiserver.pid")), log: .capstan/logs/apiserver.log"
fi

GRPC=$(sed -n 's/^grpc=//p' "$STATE/run/apiserver.addresses")
mkdir -p "$HOME/.capstan"
printf 'server: %s\n' "$GRPC" >"$HOME/.capstan/config"

cat <<MSG
Capstan is up: API on $GRPC, metrics on http://$METRICS/metrics
Client config: ~/.capstan/config
Try:  bazel-bin/tools/capstanctl/capstanctl apply -f test/fixtures/manifests/deployment-seed.yaml
      bazel-bin/tools/capstanctl/capstanctl get deployments
Stop: make down
MSG
