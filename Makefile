# Developer entry points. `make` alone lists the targets: it never starts a
# database or a long test run by surprise.
#
#   make run     start ledgerd (PostgreSQL via scripts/ensure-postgres.sh,
#                embedded NATS unless NATS_URL is set)
#   make test    the full test suite, as CI runs it
#
# Honoured variables (environment or `make VAR=value`): DATABASE_URL,
# TEST_DATABASE_URL, TEST_NATS_URL, PG_PORT, PG_PROBE_PORT, DATA_DIR (see
# scripts/ensure-postgres.sh), GOFLAGS (read by go itself), TEST_P,
# TEST_TIMEOUT, BENCHTIME, FUZZTIME, FUZZ.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# Find Go in its standard install location when it is not on PATH.
ifeq ($(shell command -v go 2>/dev/null),)
ifneq ($(wildcard /usr/local/go/bin/go),)
export PATH := $(PATH):/usr/local/go/bin
endif
endif

GO           ?= go
TEST_P       ?= 2
TEST_TIMEOUT ?= 15m
BENCHTIME    ?= 5s
BENCHN       ?= 3000x
FUZZTIME     ?= 30s
# FUZZ lists the httpapi fuzz targets `make fuzz` runs, each for FUZZTIME.
FUZZ         ?= FuzzAuth FuzzRoutes

.PHONY: help run test bench build lint openapi-lint fuzz clean db db-stop check-go

help: ## list the targets
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 12

check-go:
	@command -v $(GO) >/dev/null || { echo "make: '$(GO)' not found; install Go 1.26+ or add /usr/local/go/bin to PATH" >&2; exit 1; }
	@$(GO) version

run: check-go ## run ledgerd against a local PostgreSQL (respects DATABASE_URL)
	@url=$$(scripts/ensure-postgres.sh); \
	echo "make: DATABASE_URL=$$url" >&2; \
	DATABASE_URL="$$url" $(GO) run ./cmd/ledgerd

test: check-go ## go test -race ./... against a local PostgreSQL (what CI runs)
	@url=$$(scripts/ensure-postgres.sh --test); \
	export TEST_DATABASE_URL="$$url"; \
	echo "make: TEST_DATABASE_URL=$$url" >&2; \
	if [[ -z "$${TEST_NATS_URL:-}" ]] && timeout 2 bash -c 'exec 9<>/dev/tcp/127.0.0.1/4222' 2>/dev/null; then \
		export TEST_NATS_URL=nats://127.0.0.1:4222; \
		echo "make: a server listens on 127.0.0.1:4222; TEST_NATS_URL=$$TEST_NATS_URL" >&2; \
	fi; \
	mkdir -p .data; export CLUSTER_REPORT="$(CURDIR)/.data/cluster-report.txt"; rm -f "$$CLUSTER_REPORT"; \
	$(GO) test -race -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) ./...; \
	if [[ -s "$$CLUSTER_REPORT" ]]; then echo "make: the cluster test's figures (TestClusterFailover):"; cat "$$CLUSTER_REPORT"; fi

bench: check-go ## run the benchmarks (BENCHTIME=5s for the store, BENCHN=3000x for HTTP and webhooks, one pass of apply and rebuild; REBUILD_EVENTS=1000000 for the large rebuild); output in .data/bench.txt
	@url=$$(scripts/ensure-postgres.sh --test); \
	export TEST_DATABASE_URL="$$url"; \
	echo "make: TEST_DATABASE_URL=$$url" >&2; \
	mkdir -p .data; \
	{ echo "# $$(date -u +%Y-%m-%dT%H:%M:%SZ) $$(nproc) cores, $$($(GO) version)"; \
	  $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count 1 -timeout 30m ./ledger/eventstore/; \
	  $(GO) test -run '^$$' -bench . -benchtime $(BENCHN) -count 1 -p 1 -timeout 30m ./httpapi/ ./webhooks/; \
	  REBUILD_SKIP_PER_EVENT=1 $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./projections/; \
	} | tee .data/bench.txt

build: check-go ## build ledgerd and ledgerctl into bin/
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

lint: check-go ## gofmt -l must be empty; go vet
	@unformatted=$$(find . -type d \( -name '.?*' -o -name bin -o -name vendor -o -name testdata \) -prune \
		-o -type f -name '*.go' -print0 | xargs -0 -r gofmt -l); \
	if [[ -n "$$unformatted" ]]; then \
		echo "make lint: these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; \
	fi
	$(GO) vet ./...

# REDOCLY pins the linter so a new release's rules do not change the verdict
# unannounced; TestOpenAPILintRules checks the same rules in `make test`.
REDOCLY ?= @redocly/cli@2.77.0

openapi-lint: ## lint httpapi/openapi.json with redocly's recommended rules (needs npm; fetches REDOCLY)
	@command -v npx >/dev/null || { echo "make openapi-lint: npx (npm) not found; install Node.js, or rely on TestOpenAPILintRules" >&2; exit 1; }
	cd httpapi && npx --yes $(REDOCLY) lint --format stylish openapi.json

fuzz: check-go ## run each httpapi fuzz target of FUZZ (FuzzAuth FuzzRoutes) for FUZZTIME (30s)
	@url=$$(scripts/ensure-postgres.sh --test); \
	export TEST_DATABASE_URL="$$url"; \
	echo "make: TEST_DATABASE_URL=$$url" >&2; \
	for f in $(FUZZ); do \
		grep -qs "^func $$f(" httpapi/*_test.go || { echo "make fuzz: no $$f in httpapi/*_test.go" >&2; exit 1; }; \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./httpapi; \
	done

clean: ## remove bin/ (keeps .data/, the local database)
	rm -rf bin/

db: ## start/reuse the local PostgreSQL and print its URL
	@scripts/ensure-postgres.sh

db-stop: ## stop the private PostgreSQL cluster, if this checkout started one
	@scripts/stop-postgres.sh
