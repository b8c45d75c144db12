# Capstan: the two commands of the README's quick start, and a few more.
#   make up     install what is missing, build, start a single-node cluster (data in .capstan/)
#   make test   install what is missing, build, run every test; ends with "N passed, N failed"
#   make down   stop what `make up` started
#   make bench  build and run the benchmarks (figures in docs/benchmarks.md)

.PHONY: up down test build deps bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	@bazel build //services/... //tools/...

up: build
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

test: deps
	@bash scripts/test.sh

bench: deps
	@bazel build //bench/...
	@bazel-bin/bench/storage_bench --seconds=3
	@bazel-bin/bench/workqueue_bench
	@bazel-bin/bench/apiserver_bench
	@bazel-bin/bench/etcd_bench
	@bazel-bin/bench/controller_bench --replicas=10000
	@bazel-bin/bench/scheduler_bench --nodes=5000 --pods=10000
	@bazel-bin/bench/node_bench --nodes=100 --replicas=10000
	@bazel-bin/bench/pod_startup_bench

clean: down
	@bazel clean
	@rm -rf .capstan
