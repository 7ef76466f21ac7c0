#!/usr/bin/env bash
# make bench: the pipeline measured against its own limits, once with tansu's memory
# storage and once with its durable sqlite storage, each on a fresh stack of its own
# (EYE_HOME=.eye/bench-<storage>, ports 28080-28082, 29092, 28123, 29000). Writes
# BENCHMARKS.md and bench.json; the raw JSON lines stay in target/bench/.
#
#   EYE_BENCH_SECONDS     seconds per sweep step (default 15)
#   EYE_BENCH_E2E_SECONDS seconds per end-to-end step (default 60)
#   EYE_BENCH_MESSAGES    records for the raw limits and the consumer drain (default 1000000)
#   EYE_BENCH_STORAGES    which runs (default "memory sqlite")
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/target/bench
SECONDS_STEP=${EYE_BENCH_SECONDS:-15}
E2E_SECONDS=${EYE_BENCH_E2E_SECONDS:-60}
MESSAGES=${EYE_BENCH_MESSAGES:-1000000}
STORAGES=${EYE_BENCH_STORAGES:-memory sqlite}
PERF=$ROOT/target/release/eye-perf
log() { printf '[bench] %s\n' "$*" >&2; }

cd "$ROOT"
cargo build --release --workspace --bins --quiet
mkdir -p "$OUT"

export EYE_STACK_KAFKA_PORT=29092 EYE_STACK_CLICKHOUSE_HTTP_PORT=28123 EYE_STACK_CLICKHOUSE_TCP_PORT=29000
export EYE_STACK_INGEST_PORT=28080 EYE_STACK_QUERY_PORT=28081 EYE_STACK_CONSUMER_PORT=28082
# The development client's budget must not be what limits a benchmark.
export EYE_AUTH_EVENTS_PER_S=100000000 EYE_AUTH_EVENTS_BURST=100000000
export EYE_AUTH_REQUESTS_PER_S=10000000 EYE_AUTH_REQUESTS_BURST=10000000
export EYE_KAFKA_BROKERS=127.0.0.1:29092 EYE_CLICKHOUSE_URL=http://127.0.0.1:28123
INGEST=http://127.0.0.1:28080 QUERY=http://127.0.0.1:28081 CONSUMER=http://127.0.0.1:28082

runs=()
for storage in $STORAGES; do
    export EYE_HOME=$ROOT/.eye/bench-$storage EYE_STACK_BROKER_STORAGE=$storage
    lines=$OUT/$storage.jsonl
    : >"$lines"
    deploy/stack.sh down >/dev/null 2>&1 || true
    # A fresh broker and database each time: earlier runs' data would skew the figures.
    rm -rf "$EYE_HOME/broker" "$EYE_HOME/clickhouse"
    log "$storage: starting the stack"
    deploy/stack.sh up >/dev/null
    set -a; . "$EYE_HOME/dev-credentials"; set +a
    log "$storage: ingest flat out over 8, 32, 64, 128 connections, ${SECONDS_STEP} s each"
    "$PERF" sweep --url "$INGEST" --seconds "$SECONDS_STEP" >>"$lines"
    log "$storage: raw produce, consume and insert limits ($MESSAGES records)"
    "$PERF" limits --messages "$MESSAGES" >>"$lines"
    log "$storage: the consumer draining $MESSAGES pre-filled records"
    # The sweep's backlog first, so the drain times only the pre-filled records.
    for _ in $(seq 1 600); do
        lag=$(curl -fsS "$CONSUMER/metrics" | awk '/^eye_consumer_lag_messages\{/ {s += $2} END {print s + 0}')
        [ "$lag" = 0 ] && break
        sleep 0.5
    done
    deploy/stack.sh stop eye-consumer
    "$PERF" fill --messages "$MESSAGES" --seed 2 >>"$lines"
    deploy/stack.sh up >/dev/null
    "$PERF" drain --expect "$MESSAGES" --metrics "$CONSUMER/metrics" >>"$lines"
    for share in 0.5 0.8; do
        log "$storage: end to end at $share of the best ingest rate, ${E2E_SECONDS} s"
        "$PERF" end-to-end --ingest "$INGEST" --query "$QUERY" --consumer-metrics "$CONSUMER/metrics" \
            --max-from "$lines" --share "$share" --seconds "$E2E_SECONDS" >>"$lines"
    done
    deploy/stack.sh down >/dev/null
    runs+=("$storage=$lines")
done
"$PERF" report "${runs[@]}" --markdown "$ROOT/BENCHMARKS.md" --json "$ROOT/bench.json"
log "wrote BENCHMARKS.md and bench.json"
