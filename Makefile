# Capstan: the two commands of the README's quick start, and a few more.
#   make up     install what is missing, build, start a single-node cluster (data in .capstan/)
#   make test   install what is missing, build, run every test; ends with "N passed, N failed"
#   make down   stop what `make up` started
#   make bench  build and run every benchmark and rewrite the tables of docs/benchmarks.md

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
	@bash scripts/bench.sh

clean: down
	@bazel clean
	@rm -rf .capstan
