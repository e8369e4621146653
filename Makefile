# backupd — build, run and test. Every tool the tests need is built here.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSITYGW_VERSION := v1.8.0
TEMPORAL_CLI_VERSION := v1.5.1

.PHONY: all build run test fuzz vet fmt bench bench-api bench-fleet clean tools promtool chromium poppler hygiene race record-histories

all: build

# Two builds of cmd/backupd: backupd-server has every command (API server,
# worker, dev stack); backupd (-tags lean) is the command-line tool, a third
# of the size and quicker to start, and runs backupd-server for the others.
build: $(BIN)/backupd $(BIN)/backupd-server

SOURCES := $(shell find . -name '*.go' -not -path './bin/*' -not -path './var/*') $(shell find console/static -type f) go.mod go.sum
LDFLAGS = -ldflags "-X backupd/buildinfo.built=$$(date -u +%Y-%m-%dT%H:%M:%SZ)"

$(BIN)/backupd: $(SOURCES)
	$(GO) build -buildvcs=auto -tags lean $(LDFLAGS) -o $@ ./cmd/backupd

$(BIN)/backupd-server: $(SOURCES)
	$(GO) build -buildvcs=auto $(LDFLAGS) -o $@ ./cmd/backupd

# S3 server for the storage conformance suite and the dev stack.
$(BIN)/versitygw:
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

tools: $(BIN)/versitygw promtool chromium poppler

# promtool checks and unit-tests deploy/prometheus/alerts.yml (in
# apiserver's alerts test); Debian ships it in package prometheus.
# Installed only when missing.
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v promtool >/dev/null || { echo "promtool is still missing: install Debian's package prometheus"; exit 1; }

# The compliance report's test renders its PDF to an image and reads its
# text back (pdftoppm, pdftotext: Debian's poppler-utils); installed only
# when missing.
poppler:
	@command -v pdftoppm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends poppler-utils >/dev/null; }
	@command -v pdftoppm >/dev/null || { echo "pdftoppm is still missing: install Debian's package poppler-utils"; exit 1; }

# The console's browser test drives Debian's Chromium (headless);
# installed only when missing.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is still missing: install Debian's package chromium"; exit 1; }

vet:
	$(GO) vet ./...

# What must never land: go.mod/go.sum out of step with the imports, and
# large files (a 66 MB build of backupd was committed once).
hygiene:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; }
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1048576 {print $$2" ("$$1" bytes)"}'); \
	  if [ -n "$$big" ]; then echo "tracked files over 1 MiB (build outputs belong in .gitignore): $$big"; exit 1; fi

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# The catalog tests run on SQLite, and on PostgreSQL too when the machine's
# answers on 127.0.0.1:5432 (database test); .ci/run insists on it.
PG_DSN ?= $(shell pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && echo 'host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable')

# BACKUPD_REQUIRE_SERVERS makes tests fail, not skip, when a real server they
# need (versitygw, PostgreSQL) cannot be started.
test: tools build $(BIN)/temporal
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@$(MAKE) --no-print-directory hygiene
	@mkdir -p var && git status --porcelain --untracked-files=all | grep '^??' | sort > var/untracked-before-tests || true
	BACKUPD_TEST_POSTGRES_DSN="$${BACKUPD_TEST_POSTGRES_DSN:-$(PG_DSN)}" BACKUPD_REQUIRE_SERVERS=1 BACKUPD_VERSITYGW=$(BIN)/versitygw BACKUPD_TEMPORAL=$(BIN)/temporal BACKUPD_BIN=$(BIN)/backupd BACKUPD_CHROMIUM=$$(command -v chromium) $(GO) test -count=1 -timeout 15m ./...
	@left=$$(git status --porcelain --untracked-files=all | grep '^??' | sort | comm -13 var/untracked-before-tests - | cut -c4-); \
	  if [ -n "$$left" ]; then echo "the tests left files in the source tree (a test must write under t.TempDir() or var/): $$left"; exit 1; fi
	$(MAKE) --no-print-directory race
	$(MAKE) --no-print-directory fuzz

# The packages with concurrency under the race detector (-short: the soak
# runs once, above, without it; the symlink race suites run here too).
RACE_PKGS := ./repository/ ./storage/... ./activities/ ./apiserver/ ./restore/ ./backup/ ./apiclient/
race: tools
	BACKUPD_TEST_POSTGRES_DSN="$${BACKUPD_TEST_POSTGRES_DSN:-$(PG_DSN)}" BACKUPD_REQUIRE_SERVERS=1 BACKUPD_VERSITYGW=$(BIN)/versitygw $(GO) test -race -short -count=1 -timeout 15m $(RACE_PKGS)

# Histories of real runs of every workflow type into
# workflows/testdata/histories (replayed by the workflows tests in make
# test). Only for new workflow shapes, never to make a failing replay pass;
# RECORD_ONLY=name records only the histories whose names start so (drill).
record-histories: tools build $(BIN)/temporal
	BACKUPD_RECORD_HISTORIES=1 BACKUPD_RECORD_ONLY=$(RECORD_ONLY) BACKUPD_REQUIRE_SERVERS=1 BACKUPD_VERSITYGW=$(BIN)/versitygw BACKUPD_TEMPORAL=$(BIN)/temporal BACKUPD_BIN=$(BIN)/backupd $(GO) test -count=1 -timeout 10m -run '^TestRecordHistories$$' -v ./tests

# Each decoder's fuzz target runs briefly; longer runs: make fuzz FUZZTIME=5m.
# Go 1.26's fuzz coordinator can fail a run at its -fuzztime deadline with a
# bare "context deadline exceeded" and no failing input (go.dev/issue/75804,
# fixed in Go 1.27): such a run is tried once more; a run that finds an
# input (written to testdata/fuzz) fails at once.
FUZZTIME ?= 10s
fuzz:
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for t in $$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' repository | sed 's/func //'); do \
	  echo "fuzz $$t ($(FUZZTIME))"; \
	  for try in 1 2; do \
	    if $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./repository >$$log 2>&1; then cat $$log; break; fi; \
	    cat $$log; \
	    if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	      echo "fuzz $$t: stopped by the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input: once more"; continue; fi; \
	    exit 1; \
	  done; \
	done

# Cases A and B (speed, size, memory), C (growth under retention churn) and
# D (a long history on S3); bench/README.md has the figures and settings.
bench: build $(BIN)/versitygw
	bench/run.sh
	bench/growth.sh
	$(GO) run ./bench/history

# The API under load: list at 200 req/s over 100k backups in PostgreSQL,
# WebSocket fan-out to 500 clients (bench/README.md has the figures).
bench-api: build $(BIN)/temporal
	$(GO) run ./bench/apiload -bin $(BIN)

# One control plane for a fleet: 500 enrolled hosts heartbeating through
# the API and the host gateway, 100k backups across them, GET
# /backup/hosts and /backup/list?host= at 200 requests/s.
bench-fleet: build $(BIN)/temporal
	$(GO) run ./bench/fleetscale -bin $(BIN)

clean:
	rm -rf $(BIN) var

# The tools by their short names too (error messages say 'make bin/temporal').
bin/temporal: $(BIN)/temporal
bin/versitygw: $(BIN)/versitygw
bin/backupd: $(BIN)/backupd

# The Temporal CLI (dev server + Web UI), built once: about 2.5 minutes.
$(BIN)/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

# The whole embedded stack: Temporal dev server (SQLite under var/), S3 and
# SFTP servers on loopback, backupd's worker. Ctrl-C stops everything.
run: build $(BIN)/temporal $(BIN)/versitygw
	$(BIN)/backupd dev
