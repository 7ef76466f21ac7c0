#!/usr/bin/env bash
# The explorer's front end (web/ → query/ui/, embedded in eye-query) and its browser test.
#
#   deploy/ui.sh deps      npm ci in web/ (esbuild, TypeScript, Preact, uPlot, playwright-core),
#                          skipped while web/node_modules matches web/package-lock.json
#   deploy/ui.sh build     type-check, then rebuild query/ui/ from web/src
#   deploy/ui.sh check     type-check, rebuild into a scratch copy and fail if the committed
#                          query/ui/ differs from what the sources build (make lint)
#   deploy/ui.sh browser   install Debian's chromium and chromium-driver if missing
#                          (e2e/tests/explorer.rs drives /usr/bin/chromium)
#
# Building the Rust binary never needs Node: the built files are committed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=ui
STATE_DIR=${EYE_HOME:-$ROOT/.eye}
# shellcheck source=lib/proc.sh
. "$ROOT/deploy/lib/proc.sh"
WEB="$ROOT/web"

deps() {
    command -v node >/dev/null || die "node not found (Node.js 20 or later builds the explorer)"
    command -v npm >/dev/null || die "npm not found"
    local stamp="$WEB/node_modules/.eye-installed" want
    want=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "installing the explorer's packages into web/node_modules (npm ci)"
    # npm ci installs exactly package-lock.json, checking each package's integrity hash.
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
}

typecheck() {
    (cd "$WEB" && node_modules/.bin/tsc --noEmit -p .)
}

build() {
    deps
    typecheck
    (cd "$WEB" && node build.mjs)
    log "built query/ui/ from web/src"
}

# The sources and the committed bundle, built again in a scratch tree so that the working
# tree is never touched: the bundle must be exactly what the sources make.
check() {
    deps
    typecheck
    local scratch
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' RETURN
    mkdir -p "$scratch/web" "$scratch/query/ui"
    (cd "$WEB" && tar --exclude=./node_modules -cf - .) | (cd "$scratch/web" && tar -xf -)
    ln -s "$WEB/node_modules" "$scratch/web/node_modules"
    (cd "$scratch/web" && node build.mjs >/dev/null)
    if ! diff -r "$ROOT/query/ui" "$scratch/query/ui" >/dev/null; then
        diff -r "$ROOT/query/ui" "$scratch/query/ui" | head -20 >&2 || true
        die "query/ui/ is not what web/ builds: run deploy/ui.sh build and commit query/ui/"
    fi
    log "query/ui/ is what web/ builds"
}

browser() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        return 0
    fi
    log "installing chromium and chromium-driver from Debian (the explorer's browser test)"
    apt_install chromium chromium-driver
    /usr/bin/chromium --version >&2
}

[ $# -gt 0 ] || die "usage: $0 deps|build|check|browser ..."
for step in "$@"; do
    case $step in
        deps) deps ;;
        build) build ;;
        check) check ;;
        browser) browser ;;
        *) die "usage: $0 deps|build|check|browser ..." ;;
    esac
done
