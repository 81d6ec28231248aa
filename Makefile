# Carry: the two commands a newcomer runs are `make demo` and `make test`.
# Both install what they need first (`make deps`).

SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= $(abspath ../shared)

PYENV := target/pyenv

.PHONY: all deps build demo test lint unit schemas bench fmt

all: test

## Install the system packages the build needs (Debian/Ubuntu), if missing.
deps:
	@bash .ci/deps.sh

## Build the CLI (debug: the demo and the tests share one build).
build: deps
	$(CARGO) build -p carry-cli

## The end-to-end main job on embedded defaults, narrated.
demo: build
	SHARED=$(SHARED) CARRY_BIN=$(CURDIR)/target/debug/carry bash tests/demo.sh

## Formatting, lints and every test, then the demo as a smoke test.
test: deps lint unit schemas
	SHARED=$(SHARED) CARRY_BIN=$(CURDIR)/target/debug/carry bash tests/demo.sh > target/demo.log 2>&1 \
		|| { cat target/demo.log; echo "make demo failed"; exit 1; }
	@echo "demo: ok (log in target/demo.log)"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

unit:
	@test -d $(SHARED)/fixtures || { echo "the shared fixtures are missing: expected $(SHARED)"; exit 1; }
	$(CARGO) test --workspace

## JSON Schemas against their examples and against a freshly made key file.
$(PYENV)/bin/python:
	python3 -m venv $(PYENV)
	$(PYENV)/bin/pip install --quiet --disable-pip-version-check "jsonschema>=4.18,<5"

schemas: $(PYENV)/bin/python build
	@tmp=$$(mktemp -d); \
	CARRY_PASSPHRASE="schema check passphrase" target/debug/carry --home $$tmp/p init --name "Schema Check" >/dev/null \
	  && $(PYENV)/bin/python tests/check_schemas.py $$tmp/p; rc=$$?; rm -rf $$tmp; exit $$rc

## Benchmarks (optimised build); figures go into BENCHMARKS.md by hand.
bench: deps
	$(CARGO) bench -p carry-core --features plaintext-baseline --bench vault

fmt:
	$(CARGO) fmt --all
