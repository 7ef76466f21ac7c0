#!/usr/bin/env bash
# make bench: the pipeline measured against its own limits, once with tansu's memory
# storage and once with its durable sqlite storage, each on a fresh stack of its own
# (EYE_HOME=.eye/bench-<storage>, ports 28080-28082, 29092, 28123, 29000). Writes
# BENCHMARKS.md and bench.json; the raw JSON lines stay in target/bench/. Each step's time
# and the total are logged; the whole should stay within 15 minutes.
#
#   EYE_BENCH_SECONDS       seconds per sweep step (default 15)
#   EYE_BENCH_E2E_SECONDS   seconds per end-to-end step (default 60)
#   EYE_BENCH_MESSAGES      records for the raw limits and the consumer drain (default
#                           3000000 with the memory broker, 1000000 with sqlite, which
#                           is about ten times slower)
#   EYE_BENCH_STORAGES      which runs (default "memory sqlite")
#   EYE_BENCH_QUERY_EVENTS  events in the query benchmark's data set, on the memory run's
#                           ClickHouse (default 1000000, loaded in about 20 s; 0 skips
#                           the query step)
#   EYE_BENCH_QUERY_ARGS    `eye-bench query`'s flags (default "--cases 2 --slow-samples 20": two
#                           sessions and days instead of four, so fewer look-ups in
#                           system.query_log, and half the samples of its slowest question;
#                           about a minute for the step)
#   EYE_BENCH_CLI_EVENTS    events of the file `eye send` sends, twice, against the load
#                           generator sending as many (default 1000000; 0 skips the step)
#   EYE_BENCH_MARKDOWN, EYE_BENCH_JSON  where the report goes (default BENCHMARKS.md,
#                           bench.json; point them elsewhere for a shortened run)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/target/bench
SECONDS_STEP=${EYE_BENCH_SECONDS:-15}
E2E_SECONDS=${EYE_BENCH_E2E_SECONDS:-60}
STORAGES=${EYE_BENCH_STORAGES:-memory sqlite}
QUERY_EVENTS=${EYE_BENCH_QUERY_EVENTS:-1000000}
QUERY_ARGS=${EYE_BENCH_QUERY_ARGS:---cases 2 --slow-samples 20}
CLI_EVENTS=${EYE_BENCH_CLI_EVENTS:-1000000}
MARKDOWN=${EYE_BENCH_MARKDOWN:-$ROOT/BENCHMARKS.md}
JSON=${EYE_BENCH_JSON:-$ROOT/bench.json}
BENCH=$ROOT/target/release/eye-bench
# Overload: far more connections than the sweep, each with the largest batch ingest takes
# (EYE_INGEST_MAX_BATCH_EVENTS): 512 requests of 1000 events ask for about 380 MB in flight,
# over ten times ingest's 32 MiB budget, so its backpressure must act.
OVERLOAD_CONNECTIONS=512 OVERLOAD_BATCH=1000 OVERLOAD_SECONDS=15
log() { printf '[bench] %s\n' "$*" >&2; }
clock() { printf '%d:%02d' $((SECONDS / 60)) $((SECONDS % 60)); }
# timed WHAT COMMAND...: runs COMMAND, then logs its time and the total so far.
timed() {
    local what=$1 began=$SECONDS
    shift
    log "$what"
    "$@"
    log "  took $((SECONDS - began)) s (total $(clock))"
}

cd "$ROOT"
SECONDS=0
timed "building" cargo build --release --workspace --bins --quiet
mkdir -p "$OUT"

export EYE_STACK_KAFKA_PORT=29092 EYE_STACK_CLICKHOUSE_HTTP_PORT=28123 EYE_STACK_CLICKHOUSE_TCP_PORT=29000
export EYE_STACK_INGEST_PORT=28080 EYE_STACK_QUERY_PORT=28081 EYE_STACK_CONSUMER_PORT=28082
# The development client's budget must not be what limits a benchmark.
export EYE_AUTH_EVENTS_PER_S=100000000 EYE_AUTH_EVENTS_BURST=100000000
export EYE_AUTH_REQUESTS_PER_S=10000000 EYE_AUTH_REQUESTS_BURST=10000000
# Nor the per-client share of the in-flight budget: one client sends all of it.
export EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT=33554432
export EYE_KAFKA_BROKERS=127.0.0.1:29092 EYE_CLICKHOUSE_URL=http://127.0.0.1:28123
INGEST=http://127.0.0.1:28080 QUERY=http://127.0.0.1:28081 CONSUMER=http://127.0.0.1:28082

# Until the consumer has stored everything produced so far, so that the next step has the
# machine and the broker to itself: lag 0 (librdkafka's statistics, up to 5 s old) and no
# row stored for 2 s (which a stale lag of 0 would not explain).
drained() {
    local page lag rows last=none still=0
    for _ in $(seq 1 600); do
        page=$(curl -fsS "$CONSUMER/metrics")
        lag=$(awk '/^eye_consumer_lag_messages\{/ {s += $2} END {print s + 0}' <<<"$page")
        rows=$(awk '$1 == "eye_consumer_rows_inserted_total" {print $2}' <<<"$page")
        if [ "$lag" = 0 ] && [ "$rows" = "$last" ]; then still=$((still + 1)); else still=0; fi
        [ "$still" -ge 4 ] && return 0
        last=$rows
        sleep 0.5
    done
    log "  the consumer still lags ($lag) after 300 s; going on"
}

# drained, and ClickHouse's background merges finished (none running for 1.5 s): the
# end-to-end steps must not pay for the merges of the 3,000,000 rows the drain just stored,
# which took most of a core for tens of seconds.
settled() {
    drained
    local merges still=0
    for _ in $(seq 1 240); do
        merges=$(curl -fsS "http://127.0.0.1:28123/" --data-binary "SELECT count() FROM system.merges")
        if [ "$merges" = 0 ]; then still=$((still + 1)); else still=0; fi
        [ "$still" -ge 3 ] && return 0
        sleep 0.5
    done
    log "  ClickHouse still merges ($merges) after 120 s; going on"
}

runs=()
for storage in $STORAGES; do
    export EYE_HOME=$ROOT/.eye/bench-$storage EYE_STACK_BROKER_STORAGE=$storage
    lines=$OUT/$storage.jsonl
    : >"$lines"
    [ "$storage" = memory ] && default_messages=3000000 || default_messages=1000000
    messages=${EYE_BENCH_MESSAGES:-$default_messages}
    deploy/stack.sh down >/dev/null 2>&1 || true
    # A fresh broker and database each time: earlier runs' data would skew the figures.
    rm -rf "$EYE_HOME/broker" "$EYE_HOME/clickhouse"
    timed "$storage: starting the stack" deploy/stack.sh up >/dev/null
    set -a; . "$EYE_HOME/dev-credentials"; set +a
    timed "$storage: ingest flat out over 8, 32, 64, 128 connections, ${SECONDS_STEP} s each" \
        "$BENCH" sweep --url "$INGEST" --seconds "$SECONDS_STEP" >>"$lines"
    if [ "$storage" = memory ]; then
        timed "$storage: ingest overloaded, $OVERLOAD_CONNECTIONS connections × $OVERLOAD_BATCH events, $OVERLOAD_SECONDS s" \
            "$BENCH" overload --url "$INGEST" --connections "$OVERLOAD_CONNECTIONS" --batch "$OVERLOAD_BATCH" \
            --seconds "$OVERLOAD_SECONDS" >>"$lines"
    else
        # Tried once: 12 s into it, tansu's sqlite storage panicked (lite.rs:503, "more or
        # less than one row", in its idempotent-producer check) and answered every later
        # request with an error, so the rest of the run measured nothing. The report says so.
        echo '{"measure":"ingest_overload","skipped":"tansu 0.6.0 sqlite storage panics under it (lite.rs:503, idempotent-producer check) and stays wedged"}' >>"$lines"
    fi
    # The sweep's and the overload's backlog first: raw consume must not share the broker
    # with the consumer, and the drain must time only its own records.
    timed "$storage: waiting for the consumer to store the backlog" drained
    # The limits produce into eye.events and leave the records there for the drain; the
    # consumer stays stopped until then.
    deploy/stack.sh stop eye-consumer
    timed "$storage: raw produce, consume and insert limits ($messages records)" \
        "$BENCH" limits --messages "$messages" --into-events-topic >>"$lines"
    deploy/stack.sh up >/dev/null
    timed "$storage: the consumer draining those $messages records" \
        "$BENCH" drain --expect "$messages" --metrics "$CONSUMER/metrics" >>"$lines"
    for share in 0.5 0.8; do
        timed "$storage: waiting for the backlog and ClickHouse's merges" settled
        timed "$storage: end to end at $share of the best ingest rate, ${E2E_SECONDS} s" \
            "$BENCH" end-to-end --ingest "$INGEST" --query "$QUERY" --consumer-metrics "$CONSUMER/metrics" \
            --max-from "$lines" --share "$share" --seconds "$E2E_SECONDS" >>"$lines"
    done
    if [ "$storage" = memory ] && [ "$CLI_EVENTS" != 0 ]; then
        timed "$storage: waiting for the backlog and ClickHouse's merges" settled
        timed "$storage: eye send of a $CLI_EVENTS-event file against the load generator, in turns" \
            "$BENCH" cli-send --url "$INGEST" --events "$CLI_EVENTS" --eye "$ROOT/target/release/eye" \
            --file "$OUT/cli-events.ndjson" >>"$lines"
    fi
    if [ "$storage" = memory ] && [ "$QUERY_EVENTS" != 0 ]; then
        # Its table as printed goes next to the lines; the figures go into them.
        # shellcheck disable=SC2086
        timed "$storage: query benchmark on $QUERY_EVENTS events" \
            env EYE_BENCH_CLICKHOUSE_URL=http://127.0.0.1:28123 "$BENCH" query \
            --events "$QUERY_EVENTS" --jsonl "$lines" $QUERY_ARGS >"$OUT/$storage-query.txt"
    fi
    # When these figures were measured, for the report's header: a later rendering of the
    # same lines must not date them to itself.
    printf '{"measure":"run","finished":"%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$lines"
    timed "$storage: stopping the stack" deploy/stack.sh down >/dev/null
    # Gigabytes of rows and records no later run reads: a machine running make bench
    # often must not fill its disk.
    rm -rf "$EYE_HOME/broker" "$EYE_HOME/clickhouse"
    runs+=("$storage=$lines")
done
"$BENCH" report "${runs[@]}" --markdown "$MARKDOWN" --json "$JSON" --changes "$ROOT/tools/bench/changes.jsonl"
log "wrote $MARKDOWN and $JSON; make bench took $(clock)"
