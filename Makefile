# cvmanager — every target builds or installs what it needs from the Go module
# proxy (and Debian packages where noted), so a fresh machine only needs Go.

SHELL := /usr/bin/env bash
MODULE  := cvmanager.dev/cvmanager
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X $(MODULE)/pkg/version.Version=$(VERSION) -X $(MODULE)/pkg/version.Commit=$(COMMIT)
GO_TEST_FLAGS ?= -count=1 -timeout 60m
# The build tags of every shipped build (pkg/version.BuildTags says why);
# through GOFLAGS they reach the builds the tests and the bench make too.
BUILD_TAGS := kustomize_disable_go_plugin_support
export GOFLAGS := $(strip $(GOFLAGS) -tags=$(BUILD_TAGS))

.PHONY: all build image generate verify test test-unit control-plane browser distribution helm git demo bench fmt vet clean help

all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/cvmanager (the controller and CLI) and bin/cvmanager-state (the state commands, with the Helm SDK), static
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/cvmanager ./cmd/cvmanager
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/cvmanager-state ./cmd/cvmanager-state

# The image is built without a container engine (hack/image): the same files,
# user, entrypoint and labels as the Dockerfile, for both platforms under one index.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_OUT       ?= bin/image
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_PUSH      ?=
IMAGE_FLAGS     ?=

image: ## container image as an OCI layout in bin/image (linux/amd64 + linux/arm64), no Docker needed; IMAGE_PUSH=<ref> also pushes it
	go run ./hack/image --output '$(IMAGE_OUT)' --platforms '$(IMAGE_PLATFORMS)' --version '$(VERSION)' --commit '$(COMMIT)' \
	  --created '$(SOURCE_DATE_EPOCH)' $(if $(IMAGE_PUSH),--push '$(IMAGE_PUSH)') $(IMAGE_FLAGS)

generate: ## regenerate clientset, listers, informers, deepcopy and CRDs from pkg/apis
	codegen/update-codegen.sh

verify: vet ## fail when generated files or formatting are out of date
	codegen/verify-codegen.sh
	@unformatted="$$(gofmt -l cmd pkg test 2>/dev/null)"; \
	  if [[ -n "$$unformatted" ]]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

vet: ## go vet every package
	go vet ./...

control-plane: ## build (once, cached by version) the local Kubernetes control plane used by tests
	hack/build-control-plane.sh >/dev/null

browser: ## install Debian's chromium for the dashboard's browser test, when missing
	@command -v chromium >/dev/null || { echo "installing chromium from Debian packages" >&2; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

distribution: ## install Debian's docker-registry (CNCF Distribution 2.8) for the registry tests, when missing
	@test -x /usr/bin/docker-registry || { echo "installing docker-registry from Debian packages" >&2; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq docker-registry >/dev/null; }

git: ## install Debian's git when missing: pkg/writeback's tests serve repositories with its git-http-backend
	@test -x /usr/lib/git-core/git-http-backend || { echo "installing git from Debian packages" >&2; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq git >/dev/null; }

helm: ## build helm (once, cached) for the chart tests
	hack/build-helm.sh >/dev/null

test: control-plane browser distribution helm git verify ## unit + integration tests against a real control plane, registries and browser
	go test $(GO_TEST_FLAGS) ./...

test-unit: ## tests that need no control plane
	go test $(GO_TEST_FLAGS) -short ./...

.PHONY: test-faults vuln
GOVULNCHECK_VERSION ?= v1.1.4
VULN_UNREACHABLE := fetching vulnerabilities|vulnerability database|dial tcp|no such host|connection refused|i/o timeout|TLS handshake|network is unreachable

test-faults: control-plane browser helm ## reliability and security suite: kill -9, apiserver restart, dropped watches, leader takeover, bad input, XSS, secrets, auth (docs/reliability.md)
	go test $(GO_TEST_FLAGS) ./test/faults/...

vuln: ## govulncheck (pinned); skips with a message when the vulnerability database cannot be reached
	@out="$$(go run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) ./... 2>&1)"; rc=$$?; \
	  if [[ $$rc -ne 0 ]] && grep -qiE '$(VULN_UNREACHABLE)' <<<"$$out"; then \
	    echo "vuln: SKIPPED, govulncheck cannot reach its vulnerability database from here:" >&2; \
	    grep -m1 -iE '$(VULN_UNREACHABLE)' <<<"$$out" >&2; exit 0; fi; \
	  echo "$$out"; exit $$rc

demo: control-plane ## local control plane + registry + controller; pushes two versions and shows the rollouts (Ctrl-C stops)
	go run ./hack/demo $(DEMO_FLAGS)

bench: control-plane ## performance suite at 100, 1,000 and 10,000 CVs (report in bench/results; BENCH_FLAGS=-scales=100,1000 for a quick run)
	go run ./test/bench $(BENCH_FLAGS)

fmt:
	gofmt -w cmd pkg test

clean:
	rm -rf bin
