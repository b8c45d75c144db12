#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build and the tests need and is not there yet.
# Idempotent and quiet when nothing is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java g++ make pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev librocksdb-dev prometheus-cpp-dev libjemalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev
  curl procps
  # node agent: containers through containerd's native gRPC API, pod networks, test images
  containerd runc iproute2 busybox-static docker-registry skopeo
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev golang-github-gogo-googleapis-dev
  libcurl4-openssl-dev libssl-dev
  # benchmarks: a real etcd 3.4 to compare the apiserver with, and its gRPC protos (//third_party/etcd)
  etcd-server etcd-client golang-etcd-server-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
