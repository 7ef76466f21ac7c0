#!/usr/bin/env bash
# Fails when a crate declares a dependency its code never names (part of `make lint`).
# cargo-machete reads the sources only, so it needs no build; the first run on a machine
# installs the pinned version from crates.io (about 4 minutes on 2 cores). cargo-shear, the
# other such checker, needs a newer Rust than the machine's at its current version.
# A false positive is named in the crate's `[package.metadata.cargo-machete] ignored`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MACHETE_VERSION=0.9.2
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo-machete >/dev/null || [ "$(cargo-machete --version 2>/dev/null)" != "$MACHETE_VERSION" ]; then
    printf '[lint] building cargo-machete %s from crates.io (about 4 minutes on 2 cores)\n' "$MACHETE_VERSION" >&2
    cargo install --locked cargo-machete --version "$MACHETE_VERSION"
fi
cd "$ROOT"
cargo machete --skip-target-dir
