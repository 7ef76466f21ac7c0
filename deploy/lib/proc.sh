# Sourced, never run: what every deploy/ script needs to log, install and manage the
# processes it starts. The sourcing script sets, before sourcing:
#   LOG_TAG     the tag of its log lines ("stack", "tls", ...)
#   STATE_DIR   where run/NAME.pid and log/NAME.log live (stack.sh: $EYE_HOME)
# Pid files hold "PID EXECUTABLE": a pid counts as ours only while it still runs that
# executable, so a recycled pid is never signalled, and scripts stop each other's
# processes (deploy/stack.sh test stops a Redis deploy/redis.sh started) by the same rule.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# apt_install PACKAGE...: install Debian packages quietly.
apt_install() {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pidfile() { echo "$STATE_DIR/run/$1.pid"; }

pid_of() {
    local f pid exe actual
    f=$(pidfile "$1")
    [ -f "$f" ] || return 1
    read -r pid exe <"$f" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    actual=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    # A rebuilt binary leaves the running process pointing at the replaced file.
    actual=${actual% (deleted)}
    [ "$(readlink -f "$actual")" = "$(readlink -f "$exe")" ] || return 1
    echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

# start_bg NAME DIR COMMAND...: run COMMAND in DIR in the background, logging to log/NAME.log.
start_bg() {
    local name=$1 dir=$2 exe
    shift 2
    exe=$(command -v "$1") || die "$1 not found"
    mkdir -p "$STATE_DIR/run" "$STATE_DIR/log" "$dir"
    (cd "$dir" && exec nohup "$@" >>"$STATE_DIR/log/$name.log" 2>&1 </dev/null) &
    echo "$! $exe" >"$(pidfile "$name")"
}

# stop_one NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 30).
stop_one() {
    local name=$1 secs=${2:-30} pid i
    if ! pid=$(pid_of "$name"); then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in $secs s; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$name")"
    log "stopped $name (pid $pid)"
}

# SIGKILL, no chance to flush: what a crash or the OOM killer does.
kill_one() {
    local name=$1 pid i
    pid=$(pid_of "$name") || die "$name is not running"
    kill -KILL "$pid"
    # Gone, or a zombie (dead; its new parent has not reaped it yet).
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
        sleep 0.05
    done
    rm -f "$(pidfile "$name")"
    log "killed $name (pid $pid)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS WHAT COMMAND...: poll COMMAND until it succeeds.
wait_until() {
    local secs=$1 what=$2 i
    shift 2
    for i in $(seq 1 $((secs * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "$what did not come up within ${secs}s (see $STATE_DIR/log/)"
}

http_ok() { curl -fsS --max-time 2 "$1" >/dev/null; }
