# The commands the README names. `make run` starts the platform on embedded defaults;
# `make test` runs every test (against the local Postgres and Redis where they are reachable).
SHELL := /bin/bash
CARGO ?= cargo
.DEFAULT_GOAL := help

.PHONY: help run build test test-unit test-e2e lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## start every service in one process on embedded defaults (SQLite, in-memory cache)
	$(CARGO) run --release -p mas-cli --bin mas -- dev

build: ## build every crate
	$(CARGO) build --workspace --all-targets

test: ## every test: unit, integration and end-to-end in parallel, then the fault tests serially
	@scripts/test-summary.sh bash -c '\
	  $(CARGO) test --workspace --no-fail-fast -- --skip fault_; s=$$?; \
	  echo "== serial phase: fault tests (they stop and restart a server) =="; \
	  $(CARGO) test --workspace --no-fail-fast -- fault_ --test-threads=1 || s=1; \
	  exit $$s'

lint: ## formatting and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

bench: ## benchmarks (release build); see bench/RESULTS.md
	$(CARGO) build --release -p mas-cli -p mas-bench
	$(CARGO) run --release -p mas-bench -- --mas target/release/mas

clean:
	$(CARGO) clean
