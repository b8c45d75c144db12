#!/usr/bin/env bash
# Stops what scripts/up.sh started (SIGTERM, then SIGKILL after 10 s). Data is kept.
set -uo pipefail
cd "$(dirname "$0")/.."

stop() {  # stop NAME: the service whose pid is in .capstan/run/NAME.pid
  local pidfile=".capstan/run/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $1"
  fi
  rm -f "$pidfile"
}

# The node agent first, so that it does not restart the pods' containers while they are stopped.
stop node-agent
# Then the pods' processes (containerd's shims outlive containerd). Deleting the tasks also
# unmounts the containers' root filesystems, so .capstan can be removed; the next `make up` finds
# the containers without a process and the node agent starts them again per their restart policy.
SOCK=.capstan/containerd/containerd.sock
if [ -S "$SOCK" ] && command -v ctr >/dev/null; then
  for task in $(ctr --address "$SOCK" -n capstan tasks ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n capstan tasks delete --force "$task" >/dev/null 2>&1
  done
fi
# The controllers before the apiserver, so that they can release their leader leases: the next
# `make up` then takes them at once instead of waiting for them to expire.
stop controller-manager
stop scheduler
stop apiserver
for pidfile in .capstan/run/*.pid; do
  [ -f "$pidfile" ] && stop "$(basename "$pidfile" .pid)"
done
