#!/usr/bin/env bash
# Installs the real Segment-protocol SDKs that e2e/tests/sdks.rs drives, from their
# registries, at the versions pinned in e2e/sdk/:
#   - segment-analytics-python and rudder-sdk-python (PyPI, every file's hash pinned in
#     requirements.txt) into a virtualenv at $EYE_HOME/sdk/venv;
#   - @segment/analytics-node (npm, package-lock.json) into e2e/sdk/node_modules.
# Idempotent: each half is skipped while its stamp matches the pin file it was installed
# from, so a second run takes well under a second.
#
#   deploy/sdks.sh          install what is missing or out of date
#   deploy/sdks.sh paths    print the python and node the tests use (installs first)
#
# requirements.txt is compiled from requirements.in with pip-tools:
#   pip-compile --generate-hashes --strip-extras --allow-unsafe --no-emit-find-links \
#       --no-header -o e2e/sdk/requirements.txt e2e/sdk/requirements.in
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=sdks
STATE_DIR=${EYE_HOME:-$ROOT/.eye}
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"
EYE_HOME=${EYE_HOME:-$ROOT/.eye}
SDK="$ROOT/e2e/sdk"
VENV="$EYE_HOME/sdk/venv"

digest() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

install_python() {
    local stamp="$VENV/.eye-installed" want
    want=$(digest "$SDK/requirements.txt")
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 not found (the Python SDKs need Python 3.9 or later)"
    log "installing segment-analytics-python and rudder-sdk-python into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # --require-hashes: every file pip fetches must match a hash in requirements.txt.
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
        --require-hashes --only-binary=:all: -r "$SDK/requirements.txt"
    "$VENV/bin/python" -c 'import segment.analytics, rudderstack.analytics'
    echo "$want" >"$stamp"
}

install_node() {
    local stamp="$SDK/node_modules/.eye-installed" want
    want=$(digest "$SDK/package-lock.json")
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    command -v node >/dev/null || die "node not found (@segment/analytics-node 3 needs Node 20 or later)"
    command -v npm >/dev/null || die "npm not found"
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || die "node $(node --version) is too old: @segment/analytics-node 3 needs Node 20 or later"
    log "installing @segment/analytics-node into $SDK/node_modules (npm ci)"
    # npm ci installs exactly package-lock.json, checking each package's integrity hash.
    (cd "$SDK" && npm ci --no-audit --no-fund --loglevel=error >&2)
    node -e 'require(process.argv[1])' "$SDK/node_modules/@segment/analytics-node" \
        || die "@segment/analytics-node does not load"
    echo "$want" >"$stamp"
}

install_python
install_node

case "${1:-}" in
    "") ;;
    paths)
        echo "python=$VENV/bin/python"
        echo "node=$(command -v node)"
        ;;
    *) die "usage: $0 [paths]" ;;
esac
