#!/usr/bin/env bash
# Redis for ingest replicas that share their clients' rate limits (EYE_AUTH_REDIS_URL):
# Debian's redis-server, with its own config, data, log and pid file under $EYE_HOME/redis/
# and $EYE_HOME/run/, on 127.0.0.1:$EYE_STACK_REDIS_PORT (default 16379).
#
#   deploy/redis.sh start    install redis-server if missing, start it, wait until it answers
#   deploy/redis.sh stop     stop the server this script started (by pid file), nothing else
#   deploy/redis.sh status   one line: running or stopped, pid, port, answering or not
#   deploy/redis.sh url      the URL to put in EYE_AUTH_REDIS_URL
#
# The pid file has deploy/stack.sh's format ("PID EXECUTABLE", $EYE_HOME/run/redis.pid), so
# `deploy/stack.sh test` stops a Redis it started the way it stops its own servers.
# Rate-limit state is worth seconds: the server keeps nothing on disk (no RDB, no AOF).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EYE_HOME=${EYE_HOME:-$ROOT/.eye}
REDIS_PORT=${EYE_STACK_REDIS_PORT:-16379}
DIR="$EYE_HOME/redis"
LOG="$EYE_HOME/log/redis.log"
LOG_TAG=redis
STATE_DIR=$EYE_HOME
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"

install() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
    log "installing redis-server from Debian"
    apt_install redis-server
    # On a machine with an init system the package starts its own server on 6379; ours
    # runs on its own port, but the packaged one is not wanted either.
    as_root service redis-server stop >/dev/null 2>&1 || true
}

answers() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -qx PONG; }

start() {
    if running redis; then
        log "already running (pid $(pid_of redis)) on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    install
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process this script did not start (set EYE_STACK_REDIS_PORT)"
    mkdir -p "$DIR" "$EYE_HOME/run" "$EYE_HOME/log"
    cat >"$DIR/redis.conf" <<CONF
# Written by deploy/redis.sh; edits are overwritten at the next start.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
dir $DIR
logfile ""
# Rate-limit state only: nothing is worth keeping across a restart.
save ""
appendonly no
# Keys carry a TTL; should memory ever run out, the oldest buckets go first.
maxmemory 256mb
maxmemory-policy volatile-ttl
CONF
    start_bg redis "$DIR" redis-server "$DIR/redis.conf"
    local i
    for i in $(seq 1 100); do
        answers && break
        running redis || die "redis-server exited at start (see $LOG)"
        sleep 0.1
    done
    answers || die "redis-server did not answer within 10 s (see $LOG)"
    log "started redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$REDIS_PORT (pid $(pid_of redis), config $DIR/redis.conf)"
}

stop() { stop_one redis 10; }

status() {
    local pid health
    if pid=$(pid_of redis); then
        answers && health=answering || health="not answering"
        printf '%-13s running  pid %-7s port %-5s %s\n' redis "$pid" "$REDIS_PORT" "$health"
    else
        printf '%-13s stopped\n' redis
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) echo "redis://127.0.0.1:$REDIS_PORT" ;;
    *) die "usage: $0 start|stop|status|url" ;;
esac
