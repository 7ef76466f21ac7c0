#!/usr/bin/env bash
# A real ClickHouse cluster on this machine, beside the single-node stack: one ZooKeeper
# (Debian's `zookeeper`) and three clickhouse-server processes forming cluster `eye`:
#
#   server 1  shard 01, replica ch1   \ shard 1: two replicas (ReplicatedMergeTree copies)
#   server 2  shard 01, replica ch2   /
#   server 3  shard 02, replica ch3     shard 2: one replica
#
# Each server runs deploy/clickhouse/config.xml and the same users (users.xml and the
# read-only `eye_query` of users.d/) as the single-node stack, plus a generated
# config.d/cluster.xml: its {shard}/{replica} macros, `remote_servers`, ZooKeeper and the
# distributed DDL queue. Data, logs and pid files live under $EYE_HOME/cluster/.
#
#   deploy/cluster.sh start           install what is missing, start ZooKeeper and the
#                                     three servers (idempotent), print their HTTP URLs
#   deploy/cluster.sh stop            stop what this script started (by pid file)
#   deploy/cluster.sh status          one line per process
#   deploy/cluster.sh stop-server N   stop server N (SIGTERM)
#   deploy/cluster.sh start-server N  start server N again and wait until it answers
#   deploy/cluster.sh kill-server N   SIGKILL server N (a crash, for the tests)
#   deploy/cluster.sh urls            the HTTP URLs, one per line, server 1 first
#   deploy/cluster.sh test-env        start, then print the EYE_TEST_CLUSTER_* settings of
#                                     e2e/tests/cluster.rs as shell `export` lines (make test)
#
# Ports (server N adds N-1 to each base): EYE_STACK_CLUSTER_HTTP_PORT (18131),
# EYE_STACK_CLUSTER_TCP_PORT (19031), EYE_STACK_CLUSTER_INTERSERVER_PORT (18141, replica
# fetches), EYE_STACK_CLUSTER_ZOOKEEPER_PORT (2181). Cluster name: EYE_STACK_CLUSTER_NAME
# (eye), the value to give the services as EYE_CLICKHOUSE_CLUSTER.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EYE_HOME=${EYE_HOME:-$ROOT/.eye}
DIR=$EYE_HOME/cluster
NAME=${EYE_STACK_CLUSTER_NAME:-eye}
HTTP_BASE=${EYE_STACK_CLUSTER_HTTP_PORT:-18131}
TCP_BASE=${EYE_STACK_CLUSTER_TCP_PORT:-19031}
INTERSERVER_BASE=${EYE_STACK_CLUSTER_INTERSERVER_PORT:-18141}
ZK_PORT=${EYE_STACK_CLUSTER_ZOOKEEPER_PORT:-2181}
SERVERS=(1 2 3)
LOG_TAG=cluster
STATE_DIR=$DIR
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"

http_port() { echo $((HTTP_BASE + $1 - 1)); }
tcp_port() { echo $((TCP_BASE + $1 - 1)); }
interserver_port() { echo $((INTERSERVER_BASE + $1 - 1)); }
# Server N's shard and replica: 1 and 2 are shard 01, 3 is shard 02.
shard_of() { if [ "$1" -le 2 ]; then echo 01; else echo 02; fi; }

# ---------------------------------------------------------------- install

install() {
    local missing=()
    command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
    [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
    [ -f /usr/share/java/slf4j-simple.jar ] || missing+=(libslf4j-java)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} from Debian"
    apt_install "${missing[@]}"
    # On a machine with an init system a package just installed starts its own server on
    # our ports: stop that one only. The init script stops every process running the
    # executable (start-stop-daemon --exec), so asking it when ClickHouse was already
    # installed would also kill the stack's server, mid-test (`make test` runs this after
    # `deploy/stack.sh servers`).
    case " ${missing[*]} " in *" clickhouse-server "*)
        as_root service clickhouse-server stop >/dev/null 2>&1 || true ;;
    esac
    case " ${missing[*]} " in *" zookeeper "*)
        as_root service zookeeper stop >/dev/null 2>&1 || true ;;
    esac
}

# ---------------------------------------------------------------- processes
# (pid files, start and stop: deploy/lib/proc.sh)

zk_ok() {
    local answer
    answer=$( (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf ruok >&3 && timeout 2 cat <&3) 2>/dev/null) || return 1
    [ "$answer" = imok ]
}

# ---------------------------------------------------------------- ZooKeeper

start_zookeeper() {
    if running zookeeper; then return 0; fi
    port_open "$ZK_PORT" && die "port $ZK_PORT is taken by a process this script did not start (EYE_STACK_CLUSTER_ZOOKEEPER_PORT)"
    local dir="$DIR/zookeeper"
    mkdir -p "$dir/data"
    # Standalone; the admin HTTP server is off (it would take port 8080).
    cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
autopurge.purgeInterval=1
CFG
    log "starting ZooKeeper on 127.0.0.1:$ZK_PORT (data in $dir)"
    start_bg zookeeper "$dir" java -Xmx256m \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg"
    wait_until 60 "ZooKeeper" zk_ok
}

# ---------------------------------------------------------------- ClickHouse servers

cluster_xml() {
    local n=$1 s
    cat <<XML
<?xml version="1.0"?>
<!-- Generated by deploy/cluster.sh for server $n of cluster $NAME. -->
<yandex>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>$(interserver_port "$n")</interserver_http_port>
    <macros>
        <shard>$(shard_of "$n")</shard>
        <replica>ch$n</replica>
    </macros>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZK_PORT</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
    <remote_servers>
        <$NAME>
            <shard>
                <!-- Inserts through a Distributed table go to one replica per shard;
                     ReplicatedMergeTree copies them to the others. -->
                <internal_replication>true</internal_replication>
XML
    for s in 1 2; do
        printf '                <replica><host>127.0.0.1</host><port>%s</port></replica>\n' "$(tcp_port "$s")"
    done
    cat <<XML
            </shard>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$(tcp_port 3)</port></replica>
            </shard>
        </$NAME>
    </remote_servers>
</yandex>
XML
}

start_server() {
    local n=$1 name="clickhouse$1"
    if running "$name"; then return 0; fi
    local http tcp
    http=$(http_port "$n")
    tcp=$(tcp_port "$n")
    for p in "$http" "$tcp" "$(interserver_port "$n")"; do
        port_open "$p" && die "port $p (server $n) is taken by a process this script did not start"
    done
    # The single-node config, rendered with this server's own home: its data, tmp and
    # logs go to $DIR/ch$n/.
    local home="$DIR/ch$n" dir="$DIR/ch$n/clickhouse"
    mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/config.d" "$dir/users.d" "$home/log"
    sed -e "s|@EYE_HOME@|$home|g" -e "s|@CH_HTTP_PORT@|$http|g" -e "s|@CH_TCP_PORT@|$tcp|g" \
        "$ROOT/deploy/clickhouse/config.xml" >"$dir/config.xml"
    cp "$ROOT/deploy/clickhouse/users.xml" "$dir/users.xml"
    cp "$ROOT/deploy/clickhouse/users.d/"*.xml "$dir/users.d/"
    cluster_xml "$n" >"$dir/config.d/cluster.xml"
    log "starting clickhouse-server $n (shard $(shard_of "$n"), replica ch$n) on 127.0.0.1:$http"
    start_bg "$name" "$dir" clickhouse-server --config-file="$dir/config.xml"
}

wait_server() {
    wait_until 90 "clickhouse-server $1" http_ok "http://127.0.0.1:$(http_port "$1")/ping"
}

urls() {
    local n
    for n in "${SERVERS[@]}"; do echo "http://127.0.0.1:$(http_port "$n")"; done
}

start() {
    install
    start_zookeeper
    local n
    for n in "${SERVERS[@]}"; do start_server "$n"; done
    for n in "${SERVERS[@]}"; do wait_server "$n"; done
    cat <<MSG

ClickHouse cluster '$NAME' is up (ZooKeeper 127.0.0.1:$ZK_PORT, data in $DIR):
  server 1  shard 01 replica ch1  http://127.0.0.1:$(http_port 1)
  server 2  shard 01 replica ch2  http://127.0.0.1:$(http_port 2)
  server 3  shard 02 replica ch3  http://127.0.0.1:$(http_port 3)
Services: EYE_CLICKHOUSE_URL=http://127.0.0.1:$(http_port 1) EYE_CLICKHOUSE_CLUSTER=$NAME
Stop: deploy/cluster.sh stop
MSG
}

stop() {
    local n
    for n in "${SERVERS[@]}"; do stop_one "clickhouse$n"; done
    stop_one zookeeper
}

status() {
    local n pid health
    if pid=$(pid_of zookeeper); then
        zk_ok && health=healthy || health="not answering"
        printf '%-12s running  pid %-7s port %-5s %s\n' zookeeper "$pid" "$ZK_PORT" "$health"
    else
        printf '%-12s stopped\n' zookeeper
    fi
    for n in "${SERVERS[@]}"; do
        if pid=$(pid_of "clickhouse$n"); then
            http_ok "http://127.0.0.1:$(http_port "$n")/ping" && health=healthy || health="not answering"
            printf '%-12s running  pid %-7s port %-5s %s (shard %s, replica ch%s)\n' \
                "clickhouse$n" "$pid" "$(http_port "$n")" "$health" "$(shard_of "$n")" "$n"
        else
            printf '%-12s stopped\n' "clickhouse$n"
        fi
    done
}

server_arg() {
    case ${1:-} in
        1 | 2 | 3) echo "$1" ;;
        *) die "server number must be 1, 2 or 3 (got '${1:-}')" ;;
    esac
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    urls) urls ;;
    test-env)
        start >&2
        printf 'export EYE_TEST_CLUSTER_NAME=%s\n' "$NAME"
        printf 'export EYE_TEST_CLUSTER_CLICKHOUSE_URL=http://127.0.0.1:%s\n' "$(http_port 1)"
        printf 'export EYE_TEST_CLUSTER_REPLICA_URL=http://127.0.0.1:%s\n' "$(http_port 2)"
        ;;
    stop-server) stop_one "clickhouse$(server_arg "${2:-}")" ;;
    start-server)
        n=$(server_arg "${2:-}")
        start_server "$n"
        wait_server "$n"
        ;;
    kill-server) kill_one "clickhouse$(server_arg "${2:-}")" ;;
    *) die "usage: $0 start|stop|status|urls|test-env|stop-server N|start-server N|kill-server N" ;;
esac
