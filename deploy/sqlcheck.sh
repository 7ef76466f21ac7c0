#!/usr/bin/env bash
# Runs The Eye's SQL on current ClickHouse through chdb (deploy/sqlcheck.py).
# Installs chdb-core into a virtualenv under $EYE_HOME on first use.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EYE_HOME=${EYE_HOME:-$ROOT/.eye}
CHDB_VERSION=26.9.0
VENV="$EYE_HOME/venv"

if ! "$VENV/bin/python" -c "import chdb" 2>/dev/null; then
    echo "[sqlcheck] installing chdb-core $CHDB_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "chdb-core==$CHDB_VERSION"
fi
cd "$ROOT"
cargo run --quiet -p eye-admin -- sql | "$VENV/bin/python" "$ROOT/deploy/sqlcheck.py"
