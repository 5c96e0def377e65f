# LeadFlow developer tasks. `make help` lists them.
#
# Every tool (buf, protoc-gen-go, protoc-gen-go-grpc, staticcheck, protodump)
# is pinned by a `tool` directive in tools/go.mod and run through scripts/tool;
# nothing is installed globally and nothing is fetched but Go modules.
#
# To add a target: write it in its own section below, add it to that section's
# .PHONY line and give it a `## description` so `make help` shows it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-print-directory

TOOL := scripts/tool
BUF := $(TOOL) buf

# Third-party .proto files printed from Go modules (see tools/protodump).
THIRD_PARTY_PROTOS := buf/validate/validate.proto
PROTOVALIDATE_GO_MODULE := buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go

# Turns module directories (scripts/modules) into package patterns: cmd -> ./cmd/...
PATTERNS := sed 's|^|./|; s|$$|/...|'

# The ref `buf breaking` compares against.
BREAKING_AGAINST ?= main

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------
# Tools

.PHONY: tools
tools: ## Build every tool pinned in tools/go.mod (cached; later runs are fast).
	@for t in $$(GOWORK=off go -C tools list tool); do \
		echo "go tool $$t"; \
		GOWORK=off go -C tools tool -n "$$t" >/dev/null; \
	done

# ---------------------------------------------------------------------------
# Code generation

.PHONY: generate third-party
generate: third-party ## Regenerate third_party/ and gen/go from proto/ (commit the result).
	$(BUF) generate
	cd gen/go && GOWORK=off go mod tidy

third-party: ## Print third_party/*.proto back from the pinned Go modules.
	$(TOOL) protodump -out third_party $(THIRD_PARTY_PROTOS)
	$(BUF) format -w third_party
	install -m 0644 "$$(GOWORK=off go -C tools list -m -f '{{.Dir}}' $(PROTOVALIDATE_GO_MODULE))/LICENSE" \
		third_party/buf/validate/LICENSE

# ---------------------------------------------------------------------------
# Checks

.PHONY: check lint lint-go lint-proto gofmt vet staticcheck buf-lint buf-format buf-breaking check-generated
check: lint test ## lint + test: what CI runs.

# Each check is its own target, so `make -k lint` reports every failure.
lint: lint-go lint-proto check-generated ## All checks: lint-go, lint-proto, check-generated.

lint-go: gofmt vet staticcheck ## gofmt, go vet, staticcheck.

lint-proto: buf-lint buf-format buf-breaking ## buf lint, buf format, buf breaking.

gofmt: ## gofmt -l on every module but gen/go must list nothing.
	@echo "--- gofmt"
	@dirs="$$(scripts/modules gen/go)"; unformatted="$$(gofmt -l $$dirs)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt: these files need \`gofmt -w\`:"; echo "$$unformatted"; exit 1; \
	fi

vet: ## go vet on every workspace module.
	@echo "--- go vet"
	pkgs="$$(scripts/modules | $(PATTERNS))"; go vet $$pkgs

staticcheck: ## staticcheck on every workspace module but gen/go.
	@echo "--- staticcheck"
	pkgs="$$(scripts/modules gen/go | $(PATTERNS))"; $(TOOL) staticcheck $$pkgs

buf-lint: ## buf lint (STANDARD + PROTOVALIDATE on proto/).
	@echo "--- buf lint"
	$(BUF) lint

buf-format: ## buf format must change nothing.
	@echo "--- buf format"
	$(BUF) format -d --exit-code

buf-breaking: ## buf breaking (FILE) against main; BREAKING_AGAINST=<tag or ref> for another.
	@echo "--- buf breaking"
	scripts/buf-breaking $(BREAKING_AGAINST)

check-generated: generate ## Fail if `make generate` leaves gen/go or third_party different from git.
	@echo "--- generated code is up to date"
	@drift="$$(git status --porcelain -- gen/go third_party)"; \
	if [[ -n "$$drift" ]]; then \
		echo "generated code differs from what is committed:"; echo "$$drift"; \
		git --no-pager diff --stat -- gen/go third_party; \
		echo "run \`make generate\` and commit gen/go and third_party."; exit 1; \
	fi

# ---------------------------------------------------------------------------
# Tests

.PHONY: test
test: ## go test -race -count=1 on every workspace module (installs redis-server if missing).
	scripts/ensure-redis
	pkgs="$$(scripts/modules tools | $(PATTERNS))"; go test -race -count=1 $$pkgs

# ---------------------------------------------------------------------------
# Run (cmd/leadflow; see the README (the all-in-one, the CLI and the demo))

BIN ?= bin
SERVICES := capture scoring routing pipeline reporting
# Capture's port; scoring, routing, pipeline and reporting use the next four.
RUN_BASE_PORT ?= 7001
DEMO_FLAGS ?= --leads 60 --seed 1

.PHONY: build run bench
build: ## Build bin/leadflow and the five service binaries into bin/.
	go build -o $(BIN)/leadflow ./cmd/leadflow
	for s in $(SERVICES); do go build -o $(BIN)/$$s ./services/$$s; done

run: ## All five services in one process (embedded Redis) plus the demo; the suite keeps running until Ctrl-C.
	go build -o $(BIN)/leadflow ./cmd/leadflow
	@p=$(RUN_BASE_PORT); \
	addrs="--capture-addr 127.0.0.1:$$p --scoring-addr 127.0.0.1:$$((p+1)) --routing-addr 127.0.0.1:$$((p+2)) --pipeline-addr 127.0.0.1:$$((p+3)) --reporting-addr 127.0.0.1:$$((p+4))"; \
	$(BIN)/leadflow dev --base-port $$p >$(BIN)/dev.log 2>&1 & dev=$$!; \
	trap 'kill -TERM $$dev 2>/dev/null || true; wait $$dev 2>/dev/null || true; echo "suite stopped."' EXIT; \
	trap 'exit 130' INT TERM; \
	if ! $(BIN)/leadflow health --wait 60s $$addrs >/dev/null; then echo "leadflow dev did not start:"; cat $(BIN)/dev.log; exit 1; fi; \
	sed -n '1,/^Ctrl-C/p' $(BIN)/dev.log | grep -v '^{'; echo; \
	if ! $(BIN)/leadflow demo $$addrs $(DEMO_FLAGS); then \
		echo; echo "the demo failed; the last lines of the suite's log ($(BIN)/dev.log):"; tail -n 20 $(BIN)/dev.log; exit 1; \
	fi; \
	echo; \
	echo "The suite is still running (logs: $(BIN)/dev.log). In another terminal, for example:"; \
	echo "  $(BIN)/leadflow funnel --by source"; \
	echo "  $(BIN)/leadflow assignments rep-anna"; \
	echo "Ctrl-C stops it."; \
	wait $$dev

# Shell functions of the bench recipes: free prints a free loopback port;
# base5 a base port whose five ports (the suite's) are all free, below the
# kernel's ephemeral range (32768 up), so a client socket cannot take one
# between the choice and the listen.
PORT_FUNCS := free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }; \
	base5() { python3 -c 'import random,socket as S;f=lambda b:all(S.socket().connect_ex(("127.0.0.1",b+i))!=0 for i in range(5));print(next(b for b in iter(lambda:random.randrange(20000,32000),0) if f(b)))'; };

# bench: leadflow dev against a real redis-server on a free port (AOF off),
# tracing on (batch OTLP export to the load tool's in-process sink), then the
# load run with its baselines; bounded (< 60 s; twice that with --targets).
# BENCH_FLAGS adds load flags.
BENCH_FLAGS ?= --duration 20s --concurrency 32 --baseline 3s
bench: ## Load benchmark: leadflow dev on a real Redis with tracing on, leadflow load with echo/Redis baselines; prints the table.
	@scripts/ensure-redis >/dev/null
	go build -o $(BIN)/leadflow ./cmd/leadflow
	@$(PORT_FUNCS) \
	rp=$$(free); sp=$$(free); p=$$(base5); \
	addrs="--capture-addr 127.0.0.1:$$p --scoring-addr 127.0.0.1:$$((p+1)) --routing-addr 127.0.0.1:$$((p+2)) --pipeline-addr 127.0.0.1:$$((p+3)) --reporting-addr 127.0.0.1:$$((p+4))"; \
	redis-server --port $$rp --bind 127.0.0.1 --save '' --appendonly no >$(BIN)/bench-redis.log 2>&1 & rs=$$!; \
	OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:$$sp OTEL_TRACES_SAMPLER=parentbased_always_on \
		$(BIN)/leadflow dev --redis redis://127.0.0.1:$$rp/0 --base-port $$p --log-level error >$(BIN)/bench-dev.log 2>&1 & dev=$$!; \
	stop() { kill -TERM $$dev 2>/dev/null || true; wait $$dev 2>/dev/null || true; kill $$rs 2>/dev/null || true; wait $$rs 2>/dev/null || true; }; \
	$(BIN)/leadflow health --wait 30s $$addrs >/dev/null || { cat $(BIN)/bench-dev.log; stop; exit 1; }; \
	st=0; timeout 300 $(BIN)/leadflow load $$addrs --redis redis://127.0.0.1:$$rp/0 --setup --otlp-sink 127.0.0.1:$$sp $(BENCH_FLAGS) || st=$$?; \
	stop; exit $$st

# bench-targets: make bench with --targets, the two runs the performance
# targets are defined on (the maximum rate, then paced at half of it), judged
# at the end. By default capture→assigned alone (--further 0), as the
# throughput target reads; TARGET_FLAGS="--further 0.1 …" adds the later
# steps of a tenth of the leads, as plain make bench runs them. 512
# journeys in flight: the tool waits for each journey's assignment, so it
# cannot go faster than its journeys in flight ÷ the end-to-end latency
# (256 ÷ about 0.12 s held the suite to about 2,100/s).
TARGET_FLAGS ?= --further 0 --concurrency 512 --duration 20s --baseline 3s
.PHONY: bench-targets
bench-targets: ## The performance targets: make bench at the maximum rate, then at half of it; judges both.
	@$(MAKE) --no-print-directory bench BENCH_FLAGS="--targets $(TARGET_FLAGS)"

# bench-1m: two stacks, each a fresh redis-server and leadflow dev (tracing
# on): one holding only 200 template journeys ("empty"), one where `leadflow
# seed` added SEED_LEADS clones of them. Then the same `leadflow load` run
# against each, alternating, BENCH_ROUNDS times (empty, seeded, empty, …:
# the machine's drift hits both alike). Prints every table, the Redis memory
# after seeding and the journey throughput ratio (seeded ÷ empty, means over
# the rounds), also with each run's throughput taken as a fraction of its
# own echo rate. Needs about 16 KiB of RAM per seeded lead.
SEED_LEADS ?= 1000000
SEED_FLAGS ?=
BENCH_ROUNDS ?= 1
.PHONY: bench-1m
bench-1m: ## bench on a store of 200 journeys and on one seeded with SEED_LEADS (1M) cloned leads, alternating BENCH_ROUNDS times; tables and the throughput ratio.
	@scripts/ensure-redis >/dev/null
	go build -o $(BIN)/leadflow ./cmd/leadflow
	@$(PORT_FUNCS) \
	addrs() { echo "--capture-addr 127.0.0.1:$$1 --scoring-addr 127.0.0.1:$$(($$1+1)) --routing-addr 127.0.0.1:$$(($$1+2)) --pipeline-addr 127.0.0.1:$$(($$1+3)) --reporting-addr 127.0.0.1:$$(($$1+4))"; }; \
	devs=""; redises=""; \
	stop() { for d in $$devs; do kill -TERM $$d 2>/dev/null || true; wait $$d 2>/dev/null || true; done; \
		for r in $$redises; do kill $$r 2>/dev/null || true; wait $$r 2>/dev/null || true; done; devs=""; redises=""; }; \
	trap stop EXIT; trap 'exit 130' INT TERM; \
	up() { \
		rp=$$(free); sp=$$(free); p=$$(base5); \
		redis-server --port $$rp --bind 127.0.0.1 --save '' --appendonly no >$(BIN)/bench-1m-$$1-redis.log 2>&1 & redises="$$redises $$!"; \
		OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:$$sp OTEL_TRACES_SAMPLER=parentbased_always_on \
			$(BIN)/leadflow dev --redis redis://127.0.0.1:$$rp/0 --base-port $$p --log-level error >$(BIN)/bench-1m-$$1-dev.log 2>&1 & devs="$$devs $$!"; \
		eval "rp_$$1=$$rp sp_$$1=$$sp p_$$1=$$p"; \
		$(BIN)/leadflow health --wait 30s $$(addrs $$p) >/dev/null || { cat $(BIN)/bench-1m-$$1-dev.log; return 1; }; \
		echo "=== $$1 store: leadflow seed --leads $$2"; \
		$(BIN)/leadflow seed $$(addrs $$p) --redis redis://127.0.0.1:$$rp/0 --setup --leads $$2 $(SEED_FLAGS); \
	}; \
	up empty 0; up seeded $(SEED_LEADS); \
	rm -f $(BIN)/bench-1m-empty-*.txt $(BIN)/bench-1m-seeded-*.txt; \
	rc=0; \
	for r in $$(seq $(BENCH_ROUNDS)); do for n in empty seeded; do \
		eval "p=\$$p_$$n rp=\$$rp_$$n sp=\$$sp_$$n"; \
		echo "=== round $$r, $$n store: leadflow load $(BENCH_FLAGS)"; \
		timeout 600 $(BIN)/leadflow load $$(addrs $$p) --redis redis://127.0.0.1:$$rp/0 --setup --otlp-sink 127.0.0.1:$$sp $(BENCH_FLAGS) | tee $(BIN)/bench-1m-$$n-$$r.txt || rc=$$?; \
	done; done; \
	stop; \
	rate() { awk '/capture→assigned\/queued, sustained/ { for (i = 1; i < NF; i++) if ($$i == "catch-up)") { print $$(i+1); exit } }' $(BIN)/bench-1m-$$1.txt 2>/dev/null; }; \
	echo_rate() { awk '/gRPC echo/ { print $$(NF-2); exit }' $(BIN)/bench-1m-$$1.txt 2>/dev/null; }; \
	echo; echo "journeys/s (capture→assigned/queued, sustained), empty store vs $(SEED_LEADS) leads stored (each run's gRPC echo calls/s in brackets):"; \
	for r in $$(seq $(BENCH_ROUNDS)); do echo "$$r $$(rate empty-$$r) $$(rate seeded-$$r) $$(echo_rate empty-$$r) $$(echo_rate seeded-$$r)"; done | \
		awk '{ printf "  round %s: %s (%s) vs %s (%s)\n", $$1, $$2, $$4, $$3, $$5; e += $$2; s += $$3; if ($$4 > 0 && $$5 > 0) { en += $$2 / $$4; sn += $$3 / $$5 } } \
			END { if (e > 0) printf "ratio seeded ÷ empty: %.3f (target ≥ 0.90)\n", s / e; \
				if (en > 0) printf "ratio seeded ÷ empty of each run'"'"'s throughput ÷ its own echo rate (the drift of the machine between runs taken out): %.3f\n", sn / en }'; \
	exit $$rc
