# mailscale — top-level entry points.
#
#   make up      install what is missing, build, start mailstored + the frontend in the background
#   make down    stop it (data in run/ is kept)
#   make test    everything CI runs (.ci/run): Rust unit/integration tests + end-to-end tests
#   make bench   mailstored vs Dovecot 2.3 side by side (bench/); COUNT=500 for a quick run
#   make bench-auth   the auth location: module vs Lua vs nginx's floor (bench/auth/)
#   make bench-repl   replication: lag, catch-up (vs Dovecot dsync), failover time (bench/repl/)
#   make bench-sort   SORT/THREAD on a 50,000-message folder vs Dovecot (bench/imap_sort.py)
#   make bench-sieve  Sieve cost per delivered message, 50-rule script, vs Pigeonhole (bench/sieve.py)
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
# Written by vendor-nginx/prepare.sh (run by scripts/install-deps.sh): NGINX_SOURCE_DIR/BUILD_DIR.
NGINX_ENV ?= $(or $(CARGO_TARGET_DIR),target)/nginx-env.sh

.PHONY: help deps build module up down restart status test test-rust test-e2e bench bench-auth bench-repl bench-sort bench-sieve

help:
	@sed -n 's/^#   make/make/p' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release
	$(MAKE) --no-print-directory module

# The nginx module: ngx-mailauth with its FFI part (feature `nginx`), compiled against the tree of
# the installed stock nginx. After the workspace build, which writes the same
# target/release/libngx_mailauth.so without the module (see ngx-mailauth/README.md); switching
# between the two only relinks.
module:
	@[ -f "$(NGINX_ENV)" ] || { echo "make: $(NGINX_ENV) missing: run vendor-nginx/prepare.sh (or make deps)" >&2; exit 1; }
	. "$(NGINX_ENV)" && $(CARGO) build --release -p ngx-mailauth --features nginx

up: build
	@scripts/up.sh

down:
	@scripts/down.sh

restart: build
	@scripts/down.sh
	@scripts/up.sh

status:
	@for p in "mailstored primary:run/primary/mailstored.pid" "mailstored replica:run/replica/mailstored.pid" \
	          "redis-server (frontend cache):run/redis/redis.pid" \
	          "nginx frontend:run/frontend/nginx/nginx.pid"; do \
	    name="$${p%%:*}"; file="$${p#*:}"; \
	    if [ -s "$$file" ] && kill -0 "$$(cat "$$file")" 2>/dev/null; then \
	        echo "$$name running (pid $$(cat "$$file"))"; \
	    else echo "$$name not running"; fi; \
	done

# The e2e tests (tests/, tests/frontend/) load target/release/libngx_mailauth.so into stock nginx:
# `build` leaves the module build there, and `cargo test` does not relink it.
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

# The frontend's auth location: module vs Lua script vs nginx's floor, in one nginx (bench/auth/).
bench-auth: build
	@bench/install-bench-deps.sh
	$(PYTHON) bench/auth/run.py

# Backend pair replication: lag at 50 deliveries/s, catch-up vs doveadm backup, failover of
# 2,000 users (bench/repl/).
bench-repl: build
	$(PYTHON) bench/repl/run.py

# SORT and THREAD on one folder of SORT_COUNT messages, first and repeated call, vs Dovecot.
SORT_COUNT ?= 50000
bench-sort: build
	$(PYTHON) bench/imap_sort.py --count $(SORT_COUNT)

# Sieve at LMTP delivery: a 50-rule script vs none, mailstored vs Dovecot + Pigeonhole.
SIEVE_COUNT ?= 5000
bench-sieve: build
	@bench/install-bench-deps.sh
	$(PYTHON) bench/sieve.py --count $(SIEVE_COUNT)
