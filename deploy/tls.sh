#!/usr/bin/env bash
# TLS (and SASL) in front of the local servers, to prove The Eye's secure connections on real
# ones: a CA and a server certificate (openssl), Debian's stunnel4 terminating TLS in front
# of ClickHouse's HTTP port and of a second tansu broker that requires SASL (SCRAM) and
# advertises the TLS address. Everything it writes lives under $EYE_HOME (default .eye/).
#
#   deploy/tls.sh start    install stunnel4 if missing, make the certificates (once), start
#                          the SASL broker and stunnel, create the SCRAM user, wait for both
#   deploy/tls.sh stop     stop exactly what start started (by pid file)
#   deploy/tls.sh status   one line per process
#   deploy/tls.sh env      the EYE_TEST_TLS_* variables e2e/tests/tls.rs reads, as `export`s
#
# Ports (EYE_STACK_*_PORT): TLS_KAFKA 19393 (Kafka over TLS: SASL_SSL), TLS_CLICKHOUSE 19343
# (ClickHouse over HTTPS, to CLICKHOUSE_HTTP 8123), TLS_BROKER 19392 (the SASL broker's own
# plaintext port, behind stunnel; 127.0.0.1 only), TLS_REDIS 19379 (rediss://, to
# deploy/redis.sh's REDIS 16379). The ClickHouse and Redis behind it are the stack's
# (deploy/stack.sh servers, deploy/redis.sh start).
#
# Why stunnel for Kafka too: tansu 0.6 accepts --cert/--key but never wraps a connection in
# TLS (its broker.rs builds the acceptor as `_acceptor` and serves the plain stream).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EYE_HOME=${EYE_HOME:-$ROOT/.eye}
TLS_DIR="$EYE_HOME/tls"
TLS_KAFKA_PORT=${EYE_STACK_TLS_KAFKA_PORT:-19393}
TLS_CH_PORT=${EYE_STACK_TLS_CLICKHOUSE_PORT:-19343}
TLS_BROKER_PORT=${EYE_STACK_TLS_BROKER_PORT:-19392}
CH_HTTP_PORT=${EYE_STACK_CLICKHOUSE_HTTP_PORT:-8123}
TLS_REDIS_PORT=${EYE_STACK_TLS_REDIS_PORT:-19379}
REDIS_PORT=${EYE_STACK_REDIS_PORT:-16379}
# The SCRAM user of the SASL broker (local test credentials, not a secret).
SASL_USER=eye-tls
SASL_PASSWORD=eye-tls-secret
export PATH="$HOME/.cargo/bin:$PATH"
LOG_TAG=tls
STATE_DIR=$EYE_HOME
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"

install() {
    command -v openssl >/dev/null || {
        apt_install openssl
    }
    command -v tansu >/dev/null || die "tansu not found: run deploy/stack.sh install first"
    command -v stunnel4 >/dev/null && return 0
    log "installing stunnel4 from Debian"
    apt_install stunnel4
    # On a machine with an init system the package may start its own (unconfigured) service.
    as_root service stunnel4 stop >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- certificates

# ca NAME: a self-signed CA certificate (10 years), NAME.pem and NAME.key.
ca() {
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
        -subj "/CN=The Eye local test CA ($1)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$TLS_DIR/$1.key" -out "$TLS_DIR/$1.pem" 2>/dev/null
}

certificates() {
    [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/other-ca.pem" ] && return 0
    mkdir -p "$TLS_DIR"
    chmod 700 "$TLS_DIR"
    log "making a CA and a server certificate for 127.0.0.1/localhost in $TLS_DIR"
    ca ca
    # A CA nothing is signed by: what a client configured with the wrong CA trusts.
    ca other-ca
    openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "/CN=localhost" \
        -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$TLS_DIR/server.ext"
    openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$TLS_DIR/server.ext" \
        -out "$TLS_DIR/server.pem" 2>/dev/null
    chmod 600 "$TLS_DIR"/*.key
}

# ---------------------------------------------------------------- processes

# tansu keeps SCRAM credentials in its storage, but with --authentication it answers nothing
# but the SASL handshake until a client has signed in, so `tansu user create` cannot reach a
# broker that requires it. The user is created once on the same storage without
# --authentication, then the broker is restarted requiring it.
broker() {
    start_bg tls-broker "$EYE_HOME/tls-broker" tansu broker \
        --listener-url "tcp://127.0.0.1:$TLS_BROKER_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$TLS_KAFKA_PORT" \
        --storage-engine "sqlite://eye-tls-broker.db" --silent "$@"
}

start_broker() {
    running tls-broker && return 0
    port_open "$TLS_BROKER_PORT" && die "port $TLS_BROKER_PORT is taken by a process this script did not start"
    local dir="$EYE_HOME/tls-broker"
    if [ ! -f "$dir/.user-created" ]; then
        log "creating SCRAM user $SASL_USER on the SASL broker's storage ($dir)"
        broker
        wait_until 60 "tls-broker (user set-up)" port_open "$TLS_BROKER_PORT"
        local m
        for m in scram256 scram512; do
            tansu user create --broker "tcp://127.0.0.1:$TLS_BROKER_PORT" --mechanism "$m" \
                "$SASL_USER" "$SASL_PASSWORD" >>"$EYE_HOME/log/tls-broker.log" 2>&1 \
                || die "tansu user create failed (see $EYE_HOME/log/tls-broker.log)"
        done
        stop_one tls-broker 10
        touch "$dir/.user-created"
    fi
    log "starting the SASL broker on 127.0.0.1:$TLS_BROKER_PORT (advertising 127.0.0.1:$TLS_KAFKA_PORT)"
    broker --authentication
    wait_until 60 "tls-broker" port_open "$TLS_BROKER_PORT"
}

start_stunnel() {
    running stunnel && return 0
    local p
    for p in "$TLS_KAFKA_PORT" "$TLS_CH_PORT"; do
        port_open "$p" && die "port $p is taken by a process this script did not start"
    done
    cat >"$TLS_DIR/stunnel.conf" <<EOF
; Written by deploy/tls.sh.
foreground = yes
pid =
cert = $TLS_DIR/server.pem
key = $TLS_DIR/server.key
[kafka]
accept = 127.0.0.1:$TLS_KAFKA_PORT
connect = 127.0.0.1:$TLS_BROKER_PORT
[clickhouse]
accept = 127.0.0.1:$TLS_CH_PORT
connect = 127.0.0.1:$CH_HTTP_PORT
; deploy/redis.sh's server, when it runs (rediss:// shared rate limits).
[redis]
accept = 127.0.0.1:$TLS_REDIS_PORT
connect = 127.0.0.1:$REDIS_PORT
EOF
    log "starting stunnel: Kafka TLS 127.0.0.1:$TLS_KAFKA_PORT, ClickHouse HTTPS 127.0.0.1:$TLS_CH_PORT, Redis TLS 127.0.0.1:$TLS_REDIS_PORT"
    start_bg stunnel "$TLS_DIR" stunnel4 "$TLS_DIR/stunnel.conf"
    wait_until 30 "stunnel" port_open "$TLS_CH_PORT"
    wait_until 30 "stunnel" port_open "$TLS_KAFKA_PORT"
}

start() {
    install
    certificates
    start_broker
    start_stunnel
    # Through the whole chain: TLS verified against the CA, ClickHouse answering behind it.
    wait_until 30 "clickhouse over https (is deploy/stack.sh servers running?)" \
        curl -fsS --max-time 2 --cacert "$TLS_DIR/ca.pem" "https://127.0.0.1:$TLS_CH_PORT/ping"
}

stop() {
    stop_one stunnel 10
    stop_one tls-broker 10
}

status() {
    local name pid
    for name in tls-broker stunnel; do
        if pid=$(pid_of "$name"); then echo "$name: running (pid $pid)"
        else echo "$name: stopped"; fi
    done
}

env_vars() {
    cat <<EOF
export EYE_TEST_TLS_KAFKA_BROKERS=127.0.0.1:$TLS_KAFKA_PORT
export EYE_TEST_TLS_CLICKHOUSE_URL=https://127.0.0.1:$TLS_CH_PORT
export EYE_TEST_TLS_REDIS_URL=rediss://127.0.0.1:$TLS_REDIS_PORT
export EYE_TEST_TLS_CA_FILE=$TLS_DIR/ca.pem
export EYE_TEST_TLS_OTHER_CA_FILE=$TLS_DIR/other-ca.pem
export EYE_TEST_TLS_SASL_USERNAME=$SASL_USER
export EYE_TEST_TLS_SASL_PASSWORD=$SASL_PASSWORD
EOF
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) env_vars ;;
    *) die "usage: $0 start|stop|status|env" ;;
esac
