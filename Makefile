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

.PHONY: check lint lint-go lint-proto check-generated
check: lint test ## lint + test: what CI runs.

lint: lint-go lint-proto check-generated ## gofmt, go vet, staticcheck, buf lint/format/breaking, generated-code drift.

lint-go: ## gofmt -l (not gen/), go vet (every module), staticcheck (not gen/).
	@echo "--- gofmt"
	@dirs="$$(scripts/modules gen/go)"; unformatted="$$(gofmt -l $$dirs)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt: these files need \`gofmt -w\`:"; echo "$$unformatted"; exit 1; \
	fi
	@echo "--- go vet"
	pkgs="$$(scripts/modules | $(PATTERNS))"; go vet $$pkgs
	@echo "--- staticcheck"
	pkgs="$$(scripts/modules gen/go | $(PATTERNS))"; $(TOOL) staticcheck $$pkgs

lint-proto: ## buf lint, buf format, buf breaking against $(BREAKING_AGAINST).
	@echo "--- buf lint"
	$(BUF) lint
	@echo "--- buf format"
	$(BUF) format -d --exit-code
	@echo "--- buf breaking (against $(BREAKING_AGAINST))"
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
