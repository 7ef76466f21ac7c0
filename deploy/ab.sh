#!/usr/bin/env bash
# A change to ingest, measured before and after on one fresh memory-broker stack of its
# own (EYE_HOME=.eye/ab, ports 38080-38082, 39092, 38123, 39000): the two binaries take
# turns, ABBA ABBA..., each step `eye-bench sweep` flat out for a fixed time, so a machine
# that slows down (or a broker that fills up) during the run weighs on both sides alike.
# Appends one `"measure": "change"` line with each side's medians to tools/bench/changes.jsonl,
# which `make bench` renders in BENCHMARKS.md.
#
#   deploy/ab.sh BEFORE_BIN AFTER_BIN "title" "one sentence on what changed"
#
#   EYE_AB_ROUNDS       rounds, each one step per side (default 4)
#   EYE_AB_SECONDS      seconds per step (default 15)
#   EYE_AB_CONNECTIONS  keep-alive connections (default 64)
#   EYE_AB_OUT          where the line goes (default tools/bench/changes.jsonl)
#   EYE_AB_STORAGE      the broker's storage, memory (default) or sqlite
#   EYE_AB_BEFORE_ENV / EYE_AB_AFTER_ENV   VAR=value words for that side's ingest, to
#                       measure a setting (the same binary twice, e.g. EYE_KAFKA_LINGER_MS=20)
#
# Keep a build before changing ingest: cp target/release/eye-ingest target/ab/before/
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BEFORE=$(realpath "${1:?before: an eye-ingest binary}")
AFTER=$(realpath "${2:?after: an eye-ingest binary}")
TITLE=${3:?title of the change}
DETAIL=${4:-}
ROUNDS=${EYE_AB_ROUNDS:-4}
STEP_SECONDS=${EYE_AB_SECONDS:-15}
CONNECTIONS=${EYE_AB_CONNECTIONS:-64}
OUT=${EYE_AB_OUT:-$ROOT/tools/bench/changes.jsonl}
log() { printf '[ab] %s\n' "$*" >&2; }

# /proc names processes by their executable's file name: both must be called eye-ingest.
for b in "$BEFORE" "$AFTER"; do
    [ "$(basename "$b")" = eye-ingest ] || { log "$b: the binary must be named eye-ingest"; exit 1; }
done

cd "$ROOT"
cargo build --release --workspace --bins --quiet
# A copy, so a rebuild during the run cannot change the load generator between steps.
work=$(mktemp -d)
cp "$ROOT/target/release/eye-bench" "$work/eye-bench"
BENCH=$work/eye-bench
export EYE_HOME=$ROOT/.eye/ab EYE_STACK_BROKER_STORAGE=${EYE_AB_STORAGE:-memory}
export EYE_STACK_KAFKA_PORT=39092 EYE_STACK_CLICKHOUSE_HTTP_PORT=38123 EYE_STACK_CLICKHOUSE_TCP_PORT=39000
export EYE_STACK_INGEST_PORT=38080 EYE_STACK_QUERY_PORT=38081 EYE_STACK_CONSUMER_PORT=38082
export EYE_AUTH_EVENTS_PER_S=100000000 EYE_AUTH_EVENTS_BURST=100000000
export EYE_AUTH_REQUESTS_PER_S=10000000 EYE_AUTH_REQUESTS_BURST=10000000
export EYE_KAFKA_BROKERS=127.0.0.1:39092 EYE_CLICKHOUSE_URL=http://127.0.0.1:38123
lines=$work/lines.jsonl
trap 'deploy/stack.sh down >/dev/null 2>&1 || true; rm -rf "$work" "$EYE_HOME/broker" "$EYE_HOME/clickhouse"' EXIT

deploy/stack.sh down >/dev/null 2>&1 || true
rm -rf "$EYE_HOME/broker" "$EYE_HOME/clickhouse"
deploy/stack.sh up >/dev/null 2>&1
export EYE_STACK_BUILD=0
step() {
    local side=$1 bin=$2 side_env
    [ "$side" = before ] && side_env=${EYE_AB_BEFORE_ENV:-} || side_env=${EYE_AB_AFTER_ENV:-}
    deploy/stack.sh stop eye-ingest
    # shellcheck disable=SC2086 # VAR=value words
    env $side_env EYE_STACK_INGEST_BIN="$bin" deploy/stack.sh up >/dev/null 2>&1
    set -a; . "$EYE_HOME/dev-credentials"; set +a
    "$BENCH" sweep --url http://127.0.0.1:38080 --connections "$CONNECTIONS" --seconds "$STEP_SECONDS" |
        jq -c --arg side "$side" '. + {side: $side}' | tee -a "$lines" |
        jq -r '"\(.side): \(.events_per_sec | floor) events/s, p99 \(.latency_ms.p99) ms, ingest \(.processes["eye-ingest"].cores) cores"' >&2
}
for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS"
    if [ $((r % 2)) = 1 ]; then
        step before "$BEFORE"; step after "$AFTER"
    else
        step after "$AFTER"; step before "$BEFORE"
    fi
done

# Medians per side (peak RSS: the largest), and the ratios after / before.
jq -s -c --arg title "$TITLE" --arg detail "$DETAIL" --arg date "$(date -u +%FT%TZ)" \
    --argjson rounds "$ROUNDS" --argjson conns "$CONNECTIONS" --argjson secs "$STEP_SECONDS" '
    def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def side($s): [.[] | select(.side == $s)] | {
        events_per_sec: ([.[].events_per_sec] | median),
        p99_ms: ([.[].latency_ms.p99] | median),
        ingest_cores: ([.[].processes["eye-ingest"].cores] | median),
        events_per_ingest_core: ([.[] | .events_per_sec / .processes["eye-ingest"].cores] | median),
        peak_rss_mib: ([.[].processes["eye-ingest"].peak_rss_mib] | max),
        steps: [.[].events_per_sec | floor]
    };
    side("before") as $b | side("after") as $a | {
        measure: "change", change: $title, detail: $detail, date: $date,
        rounds: $rounds, connections: $conns, seconds: $secs,
        before: $b, after: $a,
        ratio_events_per_sec: ($a.events_per_sec / $b.events_per_sec),
        ratio_per_core: ($a.events_per_ingest_core / $b.events_per_ingest_core)
    }' "$lines" | tee -a "$OUT"
log "appended to $OUT"
