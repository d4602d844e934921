# cnlink — reliable messaging over Linux netlink connector sockets.
# Run `make help` for the targets.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 5m
BENCHCOUNT?= 6
DEMOFLAGS ?=
TORTURE_TIME    ?= 10m
TORTURE_TIMEOUT ?= 3h
TORTURE_RACE    ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the demo: two endpoints over real netlink through the fault injector (needs root or CAP_NET_ADMIN)
	$(GO) run ./examples/demo $(DEMOFLAGS)

.PHONY: test
test: ## go vet, then every test with the race detector (real-socket tests need root), torture included for 60s, then the flood tests alone
	$(GO) vet $(PKGS)
	CNLINK_TORTURE_TIME=60s $(GO) test -race -shuffle=on -timeout 20m $(PKGS)
	for m in otelcheck examples/observe; do (cd $$m && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -race -count=1 ./...) || exit 1; done
	$(MAKE) --no-print-directory hostile-floods

.PHONY: torture
torture: ## Torture sessions for TORTURE_TIME (default 10m), split between real netlink and memnet; TORTURE_RACE=1 adds -race; lists replay commands on failure
	@log=$$(mktemp) && trap 'rm -f "$$log"' EXIT && \
	$(GO) test $(if $(TORTURE_RACE),-race) -count=1 -timeout $(TORTURE_TIMEOUT) -run '^TestTorture(Netlink|Memnet)$$' -v \
		./internal/torture -torture.time=$(TORTURE_TIME) 2>&1 | tee "$$log"; \
	if grep -q '^FAIL' "$$log"; then \
		echo; echo "== replay a failing seed with one of:"; grep -ho 'replay: go test.*' "$$log" | sed 's/^replay: //' | sort -u; \
		exit 1; \
	fi

.PHONY: bench
bench: ## Full benchmark suite (BENCHCOUNT rounds, BENCHTIME each) with benchstat; writes docs/BENCHMARKS.md, docs/bench-results.txt and the charts
	cd bench/peers && $(GO) run -mod=mod ./cmd/report -go $(GO) -count $(BENCHCOUNT) $(if $(BENCHTIME),-benchtime $(BENCHTIME))

.PHONY: bench-smoke
bench-smoke: ## Every benchmark once, quickly, each checking delivery; the report pipeline into a scratch dir (part of CI)
	$(GO) test -run '^$$' -bench . -benchtime 100x -count 1 ./transport/ ./window/ ./retry/
	cd bench/peers && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -race -count 1 . && $(GO) test -mod=mod -count 1 ./internal/...
	d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
		cd bench/peers && $(GO) run -mod=mod ./cmd/report -go $(GO) -count 1 -benchtime 100x -targets=false -out "$$d"

.PHONY: hostile-floods
hostile-floods: ## Flood tests of the hostile-peer suite, alone (rates with and without each flood; part of make test; needs root)
	$(GO) test -tags cnlink_floods -count=1 -run 'Flood' -v ./internal/hostile/

.PHONY: interop
interop: ## Interop tests: the C peer written from docs/PROTOCOL.md (interop/cpeer) against the Go implementation (needs cc and root)
	$(GO) test -count=1 -v ./interop/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 5m)
	@for t in $$($(GO) test -list '^Fuzz' ./transport/ | grep ^Fuzz); do \
		echo "== transport $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./transport/ || exit 1; done
	@for p in ./internal/wire/ ./window/ ./proc/ ./reliable/; do \
		for t in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
			echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

.PHONY: lint
lint: ## gofmt, go vet and staticcheck (flood tests included), go mod tidy check of every module (part of CI)
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt needed" && exit 1)
	$(GO) vet -tags cnlink_floods $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest -tags cnlink_floods $(PKGS)
	$(GO) mod tidy -diff
	for m in bench/peers otelcheck examples/observe; do (cd $$m && $(GO) mod tidy -diff) || exit 1; done

.PHONY: tidy-check
tidy-check: ## Fail if go.mod/go.sum are not tidy
	$(GO) mod tidy -diff
