#!/usr/bin/env bash
# Starts a single-node Capstan cluster from the build in bazel-bin: the apiserver (embedded
# RocksDB), the controller-manager, the scheduler, a private containerd and one node agent (which
# runs pods as containers, each pod in its own network namespace on the bridge capstan0).
# State lives in .capstan/ (data, logs, pids); a client config is written to ~/.capstan/config so
# that capstanctl needs no flags. Idempotent: services already running are kept.
# Needs root (containers, network namespaces), as a kubelet does.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="$PWD/.capstan"
mkdir -p "$STATE/data" "$STATE/logs" "$STATE/run"
LISTEN="${CAPSTAN_LISTEN:-127.0.0.1:6443}"
METRICS="${CAPSTAN_METRICS_LISTEN:-127.0.0.1:6444}"
CM_METRICS="${CAPSTAN_CM_METRICS_LISTEN:-127.0.0.1:10257}"
SCHED_METRICS="${CAPSTAN_SCHEDULER_METRICS_LISTEN:-127.0.0.1:10259}"
AGENT_LISTEN="${CAPSTAN_AGENT_LISTEN:-127.0.0.1:10250}"
POD_CIDR="${CAPSTAN_POD_CIDR:-10.88.0.0/24}"

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

# containerd, private to this cluster: its own root, state and sockets under .capstan/containerd
# (its shims still use /run/containerd for a few hashed socket names).
CTRD="$STATE/containerd"
mkdir -p "$CTRD"
cat >"$CTRD/config.toml" <<TOML
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD/containerd.sock"
[ttrpc]
  address = "$CTRD/containerd-ttrpc.sock"
TOML
if ! running "$STATE/run/containerd.pid"; then
  nohup containerd --config "$CTRD/config.toml" >>"$STATE/logs/containerd.log" 2>&1 &
  echo $! >"$STATE/run/containerd.pid"
  for _ in $(seq 1 100); do [ -S "$CTRD/containerd.sock" ] && break; sleep 0.1; done
  [ -S "$CTRD/containerd.sock" ] || { echo "containerd did not start; see .capstan/logs/containerd.log" >&2; exit 1; }
  echo "containerd started (pid $(cat "$STATE/run/containerd.pid")), log: .capstan/logs/containerd.log"
fi

# A small local image (Debian's static busybox), loaded by the node agent at start.
IMAGE="$STATE/images/busybox.tar"
if [ ! -f "$IMAGE" ]; then
  mkdir -p "$STATE/images"
  bash scripts/make-image.sh capstan.local/busybox:1 "$IMAGE"
fi

start_service node-agent bazel-bin/services/node-agent/capstan-node-agent \
  --server="$GRPC" --node_name="$(hostname)" --node_ip=127.0.0.1 --listen="$AGENT_LISTEN" \
  --data_dir="$STATE/data/node-agent" --containerd_address="$CTRD/containerd.sock" \
  --image_archives="$IMAGE" --pod_cidr="$POD_CIDR"

mkdir -p "$HOME/.capstan"
printf 'server: %s\n' "$GRPC" >"$HOME/.capstan/config"

cat <<MSG
Capstan is up: API on $GRPC, metrics on http://$METRICS/metrics
Client config: ~/.capstan/config
Try:  bazel-bin/tools/capstanctl/capstanctl apply -f test/fixtures/manifests/deployment-hello.yaml
      bazel-bin/tools/capstanctl/capstanctl get pods -o wide
      bazel-bin/tools/capstanctl/capstanctl logs POD
Stop: make down
MSG
