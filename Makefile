# mailscale — top-level entry points.
#
#   make up      install what is missing, build, start the platform in the background
#   make down    stop it (data in run/ is kept)
#   make test    everything CI runs (.ci/run): Rust unit/integration tests + end-to-end tests
#   make bench   mailstored vs Dovecot 2.3 side by side (bench/); COUNT=500 for a quick run
#
# Scripts do the work (scripts/, bench/); this file only orders them.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# rustup installs cargo here; make may run with a PATH that lacks it.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
PYTHON ?= python3
COUNT ?= 10000

.PHONY: help deps build up down restart status test test-rust test-e2e bench

help:
	@sed -n 's/^#   make/make/p' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release

up: build
	@scripts/up.sh

down:
	@scripts/down.sh

restart: build
	@scripts/down.sh
	@scripts/up.sh

status:
	@if [ -s run/primary/mailstored.pid ] && kill -0 "$$(cat run/primary/mailstored.pid)" 2>/dev/null; then \
	    echo "mailstored primary running (pid $$(cat run/primary/mailstored.pid))"; \
	else echo "mailstored primary not running"; fi

test: build
	$(MAKE) --no-print-directory test-rust
	$(MAKE) --no-print-directory test-e2e

test-rust:
	$(CARGO) test --release --workspace

# The end-to-end tests live in tests/ (pytest). Their absence is a failure, never a pass.
test-e2e:
	@if ! compgen -G 'tests/test_*.py' >/dev/null && ! compgen -G 'tests/**/test_*.py' >/dev/null; then \
	    echo "make test: no end-to-end tests found (expected tests/test_*.py); failing" >&2; exit 1; \
	fi
	$(PYTHON) -m pytest -q tests/

bench: build
	$(PYTHON) bench/lmtp_imap.py --count $(COUNT)
