#!/usr/bin/env bash
# The Eye's local stack without Docker: installs, starts, stops and inspects the broker
# (tansu), ClickHouse and the three services. Everything it writes (data, logs, pid files)
# lives under $EYE_HOME (default: .eye/ in the checkout, git-ignored).
#
#   deploy/stack.sh install   install what is missing (clickhouse-server, tansu)
#   deploy/stack.sh servers   install + start broker and ClickHouse, wait until they answer
#   deploy/stack.sh up        servers + build + topics/migrations + services, wait for /readyz
#   deploy/stack.sh down      stop exactly what this script started (by pid file)
#   deploy/stack.sh status    one line per component
#   deploy/stack.sh check-compose   validate docker-compose.yml, its `cluster` profile too
#                             (docker-compose v1 from Debian, installed if missing)
#   deploy/stack.sh test      servers + the SDKs (deploy/sdks.sh) + Chromium and the
#                             explorer's driver (deploy/ui.sh) + the whole test suite;
#                             stops the servers it started
#   deploy/stack.sh stop NAME / kill NAME   stop (SIGTERM) or SIGKILL the broker or clickhouse
#                             (fault injection: the chaos suite, with its own EYE_HOME and ports)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EYE_HOME=${EYE_HOME:-$ROOT/.eye}
TANSU_VERSION=0.6.0
KAFKA_PORT=${EYE_STACK_KAFKA_PORT:-9092}
CH_HTTP_PORT=${EYE_STACK_CLICKHOUSE_HTTP_PORT:-8123}
CH_TCP_PORT=${EYE_STACK_CLICKHOUSE_TCP_PORT:-9000}
INGEST_PORT=${EYE_STACK_INGEST_PORT:-8080}
QUERY_PORT=${EYE_STACK_QUERY_PORT:-8081}
CONSUMER_PORT=${EYE_STACK_CONSUMER_PORT:-8082}
# sqlite (durable, the default) or memory (fast, forgets everything; for benchmarks).
BROKER_STORAGE=${EYE_STACK_BROKER_STORAGE:-sqlite}
PROFILE=${EYE_STACK_PROFILE:-release}
export PATH="$HOME/.cargo/bin:$PATH"
LOG_TAG=stack
STATE_DIR=$EYE_HOME
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"

# ---------------------------------------------------------------- install

install_clickhouse() {
    command -v clickhouse-server >/dev/null && return 0
    log "installing clickhouse-server and clickhouse-client from Debian"
    apt_install clickhouse-server clickhouse-client
    # On a machine with an init system the package starts its own server on our ports.
    as_root service clickhouse-server stop >/dev/null 2>&1 || true
}

install_tansu() {
    if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -qx "tansu $TANSU_VERSION"; then
        return 0
    fi
    log "building tansu $TANSU_VERSION from crates.io (about 9 minutes on 2 cores)"
    # --locked: without it the build fails against newer dependency versions.
    cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore,libsql
}

install() {
    install_clickhouse
    install_tansu
}

# ---------------------------------------------------------------- servers

start_broker() {
    if running broker; then return 0; fi
    port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by a process this script did not start"
    local storage
    case $BROKER_STORAGE in
        # sqlite://NAME is relative to the working directory (an absolute path loses its '/').
        sqlite) storage="sqlite://eye-broker.db" ;;
        memory) storage="memory://tansu/" ;;
        *) die "EYE_STACK_BROKER_STORAGE must be sqlite or memory (got $BROKER_STORAGE)" ;;
    esac
    log "starting tansu broker on 127.0.0.1:$KAFKA_PORT ($BROKER_STORAGE storage, data in $EYE_HOME/broker)"
    start_bg broker "$EYE_HOME/broker" tansu broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine "$storage"
    wait_until 60 "broker" port_open "$KAFKA_PORT"
}

start_clickhouse() {
    if running clickhouse; then return 0; fi
    port_open "$CH_HTTP_PORT" && die "port $CH_HTTP_PORT is taken by a process this script did not start"
    local dir="$EYE_HOME/clickhouse"
    mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$EYE_HOME/log"
    sed -e "s|@EYE_HOME@|$EYE_HOME|g" -e "s|@CH_HTTP_PORT@|$CH_HTTP_PORT|g" -e "s|@CH_TCP_PORT@|$CH_TCP_PORT|g" \
        "$ROOT/deploy/clickhouse/config.xml" >"$dir/config.xml"
    cp "$ROOT/deploy/clickhouse/users.xml" "$dir/users.xml"
    mkdir -p "$dir/users.d"
    cp "$ROOT/deploy/clickhouse/users.d/"*.xml "$dir/users.d/"
    log "starting clickhouse-server on 127.0.0.1:$CH_HTTP_PORT (data in $dir)"
    start_bg clickhouse "$dir" clickhouse-server --config-file="$dir/config.xml"
    wait_until 60 "clickhouse" http_ok "http://127.0.0.1:$CH_HTTP_PORT/ping"
}

servers() {
    install
    start_broker
    start_clickhouse
}

# ---------------------------------------------------------------- services

service_env() {
    export EYE_KAFKA_BROKERS=${EYE_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}
    export EYE_CLICKHOUSE_URL=${EYE_CLICKHOUSE_URL:-http://127.0.0.1:$CH_HTTP_PORT}
    export EYE_INGEST_LISTEN_ADDR=${EYE_INGEST_LISTEN_ADDR:-127.0.0.1:$INGEST_PORT}
    export EYE_QUERY_LISTEN_ADDR=${EYE_QUERY_LISTEN_ADDR:-127.0.0.1:$QUERY_PORT}
    export EYE_CONSUMER_LISTEN_ADDR=${EYE_CONSUMER_LISTEN_ADDR:-127.0.0.1:$CONSUMER_PORT}
    # Services run from $EYE_HOME; the schemas live in the checkout.
    export EYE_INGEST_SCHEMA_DIR=${EYE_INGEST_SCHEMA_DIR:-$ROOT/schemas}
    export EYE_QUERY_SCHEMA_DIR=${EYE_QUERY_SCHEMA_DIR:-$EYE_INGEST_SCHEMA_DIR}
    # The explorer's pipeline view: the query service reads the other two services' metrics.
    export EYE_QUERY_INGEST_METRICS_URL=${EYE_QUERY_INGEST_METRICS_URL:-http://127.0.0.1:$INGEST_PORT/metrics}
    export EYE_QUERY_CONSUMER_METRICS_URL=${EYE_QUERY_CONSUMER_METRICS_URL:-http://127.0.0.1:$CONSUMER_PORT/metrics}
    # ClickHouse runs on this machine: LZ4 would cost CPU on both ends and save no time
    # (measured in docs/known-issues.md); across a network the default (`auto`) pays.
    export EYE_CLICKHOUSE_COMPRESSION=${EYE_CLICKHOUSE_COMPRESSION:-none}
    export EYE_AUTH_CLIENTS_FILE=${EYE_AUTH_CLIENTS_FILE:-$EYE_HOME/clients.toml}
    if [ -z "${EYE_AUTH_TOKEN_SECRET:-}" ]; then
        # One signing key for both services, kept across restarts so tokens survive them.
        local key="$EYE_HOME/token-secret"
        if [ ! -s "$key" ]; then
            (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key")
        fi
        EYE_AUTH_TOKEN_SECRET=$(cat "$key")
        export EYE_AUTH_TOKEN_SECRET
    fi
}

# The development client: every scope, and event types without a schema accepted (the
# SDK examples send Segment's identify and track, which have none); created once. Its
# credentials go to $EYE_HOME/dev-credentials as shell lines (`source` it) and are printed
# by `make up`.
dev_client() {
    local creds="$EYE_HOME/dev-credentials"
    if [ -s "$creds" ] && [ -s "$EYE_AUTH_CLIENTS_FILE" ]; then
        # shellcheck disable=SC1090
        . "$creds"
        if accepts_unknown_types "${EYE_CLIENT_ID:-none}"; then
            services_urls "$creds"
            return 0
        fi
    fi
    log "creating the development client (every scope) in $EYE_AUTH_CLIENTS_FILE"
    (umask 077 && "$(bin eye-admin)" clients create --name development \
        --scopes events:write,events:read,aggregations:read,admin --unknown-types accept \
        --shell >"$creds")
    services_urls "$creds"
}

# Whether client $1 is in the clients file with `unknown_types = "accept"` (a development
# client made before it had that policy is made again).
accepts_unknown_types() {
    awk -v id="$1" '
        /^\[\[clients\]\]/ { mine = 0 }
        $0 == "id = \"" id "\"" { mine = 1 }
        mine && $0 == "unknown_types = \"accept\"" { found = 1 }
        END { exit !found }' "$EYE_AUTH_CLIENTS_FILE"
}

# The services' URLs beside the credentials, exported, so that `eye` (which reads
# EYE_INGEST_URL, EYE_QUERY_URL and EYE_API_KEY) works once the file is sourced.
services_urls() {
    local creds=$1
    sed -i 's/^EYE_/export EYE_/' "$creds"
    sed -i '/^export EYE_INGEST_URL=/d; /^export EYE_QUERY_URL=/d' "$creds"
    echo "export EYE_INGEST_URL=http://127.0.0.1:$INGEST_PORT" >>"$creds"
    echo "export EYE_QUERY_URL=http://127.0.0.1:$QUERY_PORT" >>"$creds"
}

# EYE_STACK_INGEST_BIN runs another ingest binary (deploy/ab.sh: a change's before and
# after, measured on one stack).
bin() {
    if [ "$1" = eye-ingest ] && [ -n "${EYE_STACK_INGEST_BIN:-}" ]; then
        echo "$EYE_STACK_INGEST_BIN"
    else
        echo "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/$1"
    fi
}

build() {
    log "building the services ($PROFILE)"
    local flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build "${flag[@]}" --bins --quiet)
}

start_service() {
    local name=$1 port=$2
    if running "$name"; then
        # Running already: keep it, unless `make up` just rebuilt its binary.
        [ "$(bin "$name")" -nt "$(pidfile "$name")" ] || return 0
        log "$name was rebuilt; restarting it"
        stop_one "$name"
    fi
    port_open "$port" && die "port $port is taken by a process this script did not start"
    log "starting $name on 127.0.0.1:$port"
    start_bg "$name" "$EYE_HOME" "$(bin "$name")"
}

up() {
    servers
    # EYE_STACK_BUILD=0: start what is built (deploy/ab.sh restarting ingest between steps).
    [ "${EYE_STACK_BUILD:-1}" = 0 ] || build
    service_env
    "$(bin eye-admin)" init
    dev_client
    start_service eye-ingest "$INGEST_PORT"
    # The query service reads as the read-only user of deploy/clickhouse/users.d/, and
    # deletes (DELETE /v1/users/{id} ...) as the user the consumer writes as.
    EYE_DELETION_CLICKHOUSE_USER=${EYE_DELETION_CLICKHOUSE_USER:-${EYE_CLICKHOUSE_USER:-default}} \
        EYE_CLICKHOUSE_USER=${EYE_QUERY_CLICKHOUSE_USER:-eye_query} \
        EYE_CLICKHOUSE_PASSWORD=${EYE_QUERY_CLICKHOUSE_PASSWORD:-eye_query} \
        start_service eye-query "$QUERY_PORT"
    start_service eye-consumer "$CONSUMER_PORT"
    local svc port
    for svc in eye-ingest:$INGEST_PORT eye-query:$QUERY_PORT eye-consumer:$CONSUMER_PORT; do
        port=${svc#*:}
        wait_until 60 "${svc%%:*}" http_ok "http://127.0.0.1:$port/readyz"
    done
    cat <<MSG

The Eye is up.
  ingest    http://127.0.0.1:$INGEST_PORT    POST /v1/events
  query     http://127.0.0.1:$QUERY_PORT    GET  /v1/sessions/{session_id}/events
  explorer  http://127.0.0.1:$QUERY_PORT/ui/    sign in with the development client below
  consumer  http://127.0.0.1:$CONSUMER_PORT    health and metrics
  each service: /healthz /readyz /metrics
  kafka     127.0.0.1:$KAFKA_PORT (tansu, topic eye.events)
  clickhouse http://127.0.0.1:$CH_HTTP_PORT (database eye)
Logs: $EYE_HOME/log/    Stop: make down    Status: make status

Development client (every scope, types without a schema accepted), in $EYE_HOME/dev-credentials:
$(cat "$EYE_HOME/dev-credentials")
Use it:  source $EYE_HOME/dev-credentials
         curl -H "Authorization: Bearer \$EYE_API_KEY" http://127.0.0.1:$QUERY_PORT/v1/categories
MSG
}

down() {
    local name
    for name in eye-ingest eye-consumer eye-query clickhouse broker; do
        stop_one "$name"
    done
}

stop_servers() {
    stop_one clickhouse
    stop_one broker
}

status() {
    local name port pid health
    for entry in broker:$KAFKA_PORT clickhouse:$CH_HTTP_PORT eye-ingest:$INGEST_PORT eye-query:$QUERY_PORT eye-consumer:$CONSUMER_PORT; do
        name=${entry%%:*}
        port=${entry#*:}
        if pid=$(pid_of "$name"); then
            case $name in
                broker) port_open "$port" && health=listening || health="not listening" ;;
                clickhouse) http_ok "http://127.0.0.1:$port/ping" && health=healthy || health="not answering" ;;
                *) http_ok "http://127.0.0.1:$port/readyz" && health=ready || health="not ready" ;;
            esac
            printf '%-13s running  pid %-7s port %-5s %s\n' "$name" "$pid" "$port" "$health"
        else
            printf '%-13s stopped\n' "$name"
        fi
    done
}

# No Docker engine here, but docker-compose v1 validates the file (keys and types).
check_compose() {
    if ! command -v docker-compose >/dev/null; then
        log "installing docker-compose from Debian (to validate docker-compose.yml)"
        apt_install docker-compose
    fi
    docker-compose -f "$ROOT/docker-compose.yml" config -q
    log "docker-compose.yml is valid"
}

run_tests() {
    local started=()
    running broker || started+=(broker)
    running clickhouse || started+=(clickhouse)
    servers
    # Redis for the shared rate limits (crates/auth, e2e/tests/replicas.rs); stopped below like the servers.
    running redis || started+=(redis); "$ROOT/deploy/redis.sh" start && export EYE_TEST_REDIS_URL=$("$ROOT/deploy/redis.sh" url)
    local rc=0 out="$EYE_HOME/log/test-output.log"
    mkdir -p "$EYE_HOME/log"
    (
        cd "$ROOT"
        export EYE_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
        export EYE_TEST_CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT
        # errexit does not apply inside a subshell on the left of `||`: count failures.
        failures=0
        # The ClickHouse cluster of e2e/tests/cluster.rs (stopped below): EYE_TEST_CLUSTER_*.
        { cluster_env=$("$ROOT/deploy/cluster.sh" test-env); } 2>&1 && eval "$cluster_env" || failures=$((failures + 1))
        # The real Segment-protocol SDKs that e2e/tests/sdks.rs drives, from PyPI and npm.
        "$ROOT/deploy/sdks.sh" 2>&1 || failures=$((failures + 1))
        # Chromium and the explorer's driver (playwright-core) for e2e/tests/explorer.rs.
        "$ROOT/deploy/ui.sh" deps browser 2>&1 || failures=$((failures + 1))
        # The fault-injection suite (tools/chaos/tests) runs the service binaries themselves.
        cargo build --workspace --bins 2>&1 || failures=$((failures + 1))
        # TLS (stunnel) in front of ClickHouse and of a SASL broker, for e2e/tests/tls.rs.
        { "$ROOT/deploy/tls.sh" start 2>&1 && eval "$("$ROOT/deploy/tls.sh" env)"; } || failures=$((failures + 1))
        # --show-output: tests that measure (10,000 events, crash recovery) print their figures.
        cargo test --workspace --all-targets --no-fail-fast -- --show-output 2>&1 || failures=$((failures + 1))
        "$ROOT/deploy/sqlcheck.sh" 2>&1 || failures=$((failures + 1))
        "$ROOT/deploy/cluster.sh" stop 2>&1
        exit "$failures"
    ) | tee "$out" || rc=$?
    local name
    for name in "${started[@]}"; do stop_one "$name"; done
    "$ROOT/deploy/tls.sh" stop || true
    # One closing line for the whole suite: cargo's per-binary lines plus the SQL check's.
    awk '/^test result:|^sqlcheck on/ {
            for (i = 1; i <= NF; i++) {
                if ($(i) ~ /^passed[;,]?$/) p += $(i-1)
                if ($(i) ~ /^failed[;,]?$/) f += $(i-1)
            }
         }
         END { printf "total: %d passed, %d failed\n", p, f }' "$out"
    return $rc
}

case "${1:-}" in
    install) install ;;
    servers) servers ;;
    up) up ;;
    down) down ;;
    stop-servers) stop_servers ;;
    # Fault injection (the chaos suite) and benchmarks: stop one process gracefully, or
    # SIGKILL it.
    stop) stop_one "${2:?stop what: broker, clickhouse or a service}" ;;
    kill) kill_one "${2:?kill what: broker or clickhouse}" ;;
    status) status ;;
    check-compose) check_compose ;;
    test) run_tests ;;
    *) die "usage: $0 install|servers|up|down|stop-servers|stop NAME|kill NAME|status|check-compose|test" ;;
esac
