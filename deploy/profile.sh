#!/usr/bin/env bash
# make profile: flamegraphs of ingest and the consumer at full load, on a fresh
# memory-broker stack of their own (EYE_HOME=.eye/ab, ports 38080-38082, 39092, 38123,
# 39000; the same as deploy/ab.sh, so don't run both at once). Installs perf (Debian's
# linux-perf) and inferno when missing. Writes target/profile/{ingest,consumer}.svg, the
# folded stacks beside them, and prints each one's top functions by self time.
#
#   EYE_PROFILE_SECONDS   seconds recorded per service (default 15)
#   EYE_PROFILE_MESSAGES  records pre-filled for the consumer to drain (default 3000000)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=profile
STATE_DIR=${EYE_HOME:-$ROOT/.eye}
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"
OUT=$ROOT/target/profile
SECS=${EYE_PROFILE_SECONDS:-15}
MESSAGES=${EYE_PROFILE_MESSAGES:-3000000}
BENCH=$ROOT/target/release/eye-bench
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v perf >/dev/null; then
    log "installing perf (linux-perf) from Debian"
    apt_install linux-perf
fi
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno --version 0.12.8

cd "$ROOT"
cargo build --release --workspace --bins --quiet
mkdir -p "$OUT"
export EYE_HOME=$ROOT/.eye/ab EYE_STACK_BROKER_STORAGE=memory
export EYE_STACK_KAFKA_PORT=39092 EYE_STACK_CLICKHOUSE_HTTP_PORT=38123 EYE_STACK_CLICKHOUSE_TCP_PORT=39000
export EYE_STACK_INGEST_PORT=38080 EYE_STACK_QUERY_PORT=38081 EYE_STACK_CONSUMER_PORT=38082
export EYE_AUTH_EVENTS_PER_S=100000000 EYE_AUTH_EVENTS_BURST=100000000
export EYE_AUTH_REQUESTS_PER_S=10000000 EYE_AUTH_REQUESTS_BURST=10000000
export EYE_KAFKA_BROKERS=127.0.0.1:39092 EYE_CLICKHOUSE_URL=http://127.0.0.1:38123
trap 'deploy/stack.sh down >/dev/null 2>&1 || true; rm -rf "$EYE_HOME/broker" "$EYE_HOME/clickhouse"' EXIT
deploy/stack.sh down >/dev/null 2>&1 || true
rm -rf "$EYE_HOME/broker" "$EYE_HOME/clickhouse"
deploy/stack.sh up >/dev/null
set -a; . "$EYE_HOME/dev-credentials"; set +a
pid() { read -r p _ <"$EYE_HOME/run/$1.pid"; echo "$p"; }

# DWARF unwinding: release builds keep no frame pointers, and line tables name inlined code.
record() {
    local name=$1
    perf record -q -F 99 --call-graph dwarf,32768 -p "$(pid "$name")" -o "$OUT/$name.data" -- sleep "$SECS" 2>/dev/null
    perf script -i "$OUT/$name.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$name.folded"
    inferno-flamegraph --title "$name at full load" <"$OUT/$name.folded" >"$OUT/$name.svg"
    rm -f "$OUT/$name.data"
    log "$name: $OUT/$name.svg; top self time:"
    # The leaf of each folded stack is where the time was spent.
    awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf[f[k]] += n; total += n }
         END { for (l in leaf) printf "%6.2f%%  %s\n", 100 * leaf[l] / total, l }' \
        "$OUT/$name.folded" | sort -rn | head -25 >&2
}

log "ingest: flat out over 64 connections, recording ${SECS} s"
"$BENCH" sweep --url http://127.0.0.1:38080 --connections 64 --seconds $((SECS + 10)) >"$OUT/ingest-load.json" &
load=$!
sleep 5
record eye-ingest
wait "$load"
jq -r '"ingest while recorded: \(.events_per_sec | floor) events/s"' "$OUT/ingest-load.json" >&2

log "consumer: draining $MESSAGES pre-filled records, recording ${SECS} s"
for _ in $(seq 1 600); do
    lag=$(curl -fsS http://127.0.0.1:38082/metrics | awk '/^eye_consumer_lag_messages\{/ {s += $2} END {print s + 0}')
    [ "$lag" = 0 ] && break
    sleep 0.5
done
deploy/stack.sh stop eye-consumer
"$BENCH" fill --messages "$MESSAGES" --seed 2 >/dev/null
deploy/stack.sh up >/dev/null
record eye-consumer
