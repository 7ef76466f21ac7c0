# The Eye. Quick start: `make up`, then `make test`. Every target installs what it needs.
.PHONY: up down status servers test lint fmt ui check install bench-query chaos loadgen bench profile

## Run the whole pipeline (broker, ClickHouse, ingest :8080, query :8081, consumer :8082).
up:
	deploy/stack.sh up

## Stop exactly the processes `make up` started.
down:
	deploy/stack.sh down

## One line per component: running or not, pid, health.
status:
	deploy/stack.sh status

## Install clickhouse-server and tansu if missing.
install:
	deploy/stack.sh install

## Start only the broker and ClickHouse (what the tests need).
servers:
	deploy/stack.sh servers

## The whole test suite against real servers: unit, end-to-end, crash recovery, and the
## SQL checks on current ClickHouse (chdb). Starts the servers it needs, stops those it started.
test:
	deploy/stack.sh test

## Formatting, lints and unused dependencies, as CI runs them (the first run on a machine
## installs cargo-machete: deploy/unused-deps.sh), and the explorer's committed bundle
## against its sources (deploy/ui.sh check), and docker-compose.yml with its cluster profile.
lint:
	cargo fmt --all -- --check
	deploy/ui.sh check
	deploy/stack.sh check-compose
	deploy/unused-deps.sh
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## Rebuild the explorer (web/ → query/ui/); commit query/ui/ with the sources.
ui:
	deploy/ui.sh build

## Query benchmark: loads 10 million events into database eye_bench once (skipped when
## already loaded), then times each question through the query service against the same
## SQL sent straight to ClickHouse. Flags: `make bench-query BENCH_ARGS="--help"`.
bench-query:
	deploy/stack.sh servers
	cargo run --release -p eye-bench -- query $(BENCH_ARGS)

## Fault-injection suite, full size: every scenario (consumer, broker and ingest killed,
## ClickHouse stopped or refusing, rebalance, poison, overload) with 1,000,000 events,
## checked through the query API, plus the negative control. Runs on its own broker and
## ClickHouse (ports 19092, 18123). Flags: `make chaos CHAOS_ARGS="--help"`.
chaos:
	cargo build --release --workspace --bins
	target/release/eye-chaos $(CHAOS_ARGS)

## Pipeline benchmark (meant to take under 15 minutes, each step's time is
## logged): ingest sweep and overload, raw limits, consumer drain (3M records; 1M with
## sqlite), end to end, the query benchmark on 1M events; with tansu's memory, then sqlite
## storage. Writes BENCHMARKS.md and bench.json, with per-core sizing and the changes in
## tools/bench/changes.jsonl. Knobs: the top of deploy/bench.sh.
bench:
	deploy/bench.sh

## Flamegraphs of ingest and the consumer at full load (target/profile/*.svg), on a
## memory-broker stack of their own. A change's before/after: deploy/ab.sh.
profile:
	deploy/profile.sh

## Load generator against the running stack (`make up`): `make loadgen LOADGEN_ARGS="--help"`.
loadgen:
	cargo build --release -p eye-loadgen
	set -a && . .eye/dev-credentials && set +a && target/release/eye-loadgen $(LOADGEN_ARGS)

## What CI runs.
check: lint test
