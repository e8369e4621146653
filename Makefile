# backupd — build, run and test. Every tool the tests need is built here.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSITYGW_VERSION := v1.8.0
TEMPORAL_CLI_VERSION := v1.5.1

.PHONY: all build run test fuzz vet fmt bench clean tools

all: build

build: $(BIN)/backupd

$(BIN)/backupd: $(shell find . -name '*.go' -not -path './bin/*' -not -path './var/*') go.mod go.sum
	$(GO) build -o $@ ./cmd/backupd

# S3 server for the storage conformance suite and the dev stack.
$(BIN)/versitygw:
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

tools: $(BIN)/versitygw

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# BACKUPD_REQUIRE_SERVERS makes tests fail, not skip, when a real server they
# need (versitygw, PostgreSQL) cannot be started.
test: tools build
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	BACKUPD_REQUIRE_SERVERS=1 BACKUPD_VERSITYGW=$(BIN)/versitygw BACKUPD_BIN=$(BIN)/backupd $(GO) test -count=1 -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz

# Each decoder's fuzz target runs briefly; longer runs: make fuzz FUZZTIME=5m
FUZZTIME ?= 10s
fuzz:
	@for t in $$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' repository | sed 's/func //'); do \
	  echo "fuzz $$t ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./repository || exit 1; \
	done

bench: build
	bench/run.sh

clean:
	rm -rf $(BIN) var

# Until the server stack lands (issue 3: Temporal dev server, API, worker),
# `make run` demonstrates the engine end to end on this machine: a local
# repository under var/, a backup of the project's own tree, a check and a
# restore. It prints what it did and where.
run: build
	@set -e; mkdir -p var; export BACKUPD_PASSWORD=$${BACKUPD_PASSWORD:-dev-password}; \
	repo=$(CURDIR)/var/backups/local; \
	[ -f $$repo/config ] || $(BIN)/backupd repo init --repo $$repo; \
	$(BIN)/backupd repo backup --repo $$repo --type incremental --component project=$(CURDIR) --exclude '/**/var' --exclude '/**/bin'; \
	$(BIN)/backupd repo list --repo $$repo; \
	$(BIN)/backupd repo check --repo $$repo --read-data-percent 10; \
	rm -rf var/restore; $(BIN)/backupd repo restore --repo $$repo --backup latest --target var/restore; \
	echo; echo "repository: $$repo (password: $$BACKUPD_PASSWORD)"; echo "restored to: $(CURDIR)/var/restore"
