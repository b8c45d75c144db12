#!/usr/bin/env bash
# Stops what scripts/up.sh started (SIGTERM, then SIGKILL after 10 s). Data is kept.
set -uo pipefail
cd "$(dirname "$0")/.."
# The pods' processes first (containerd's shims outlive containerd): the next `make up` finds their
# containers exited and the node agent starts them again per their restart policy.
SOCK=.capstan/containerd/containerd.sock
if [ -S "$SOCK" ] && command -v ctr >/dev/null; then
  for task in $(ctr --address "$SOCK" -n capstan tasks ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n capstan tasks kill -s SIGKILL "$task" >/dev/null 2>&1
  done
fi
for pidfile in .capstan/run/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  name=$(basename "$pidfile" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name"
  fi
  rm -f "$pidfile"
done
