#!/usr/bin/env bash
# Installs what the aws-sm:// tests need on a fresh Debian machine. Idempotent: anything
# already present is left alone. Prints where `moto_server` is.
#
# - moto's server (`pip install 'moto[server]'`): a local AWS with Secrets Manager (including
#   BatchGetSecretValue) and STS (AssumeRoleWithWebIdentity, GetCallerIdentity). The tests
#   start one per test on a free loopback port.
# - openssl and curl, for the test against moto serving HTTPS.
# - It is linked at ~/.cache/stepsecret/bin/moto_server, where the tests look when it is not
#   on PATH (STEPSECRET_MOTO_SERVER overrides both).
set -euo pipefail

log() { printf 'deps/aws: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v python3 >/dev/null || missing+=(python3 python3-pip python3-venv)
# The HTTPS test signs a throwaway CA with the openssl CLI and seeds moto through curl.
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt_install "${missing[@]}"
fi

link_dir="${HOME}/.cache/stepsecret/bin"
venv="${HOME}/.cache/stepsecret/moto-venv"

# A moto_server that can serve Secrets Manager (the [server] extra brings flask & co).
works() { "$1" --help >/dev/null 2>&1; }

find_moto() {
    local candidate
    for candidate in "${STEPSECRET_MOTO_SERVER:-}" "$(command -v moto_server || true)" "$venv/bin/moto_server"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && works "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

if ! moto=$(find_moto); then
    log "pip install 'moto[server]'"
    if ! python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' 2>/dev/null \
        || ! moto=$(find_moto); then
        # Debian's system Python refuses global installs (PEP 668): use a private venv.
        python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
        "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'moto[server]'
    fi
    moto=$(find_moto) || { log "moto[server] installed but moto_server was not found"; exit 1; }
fi

mkdir -p "$link_dir"
ln -sf "$moto" "$link_dir/moto_server"
log "moto_server: $moto"
printf '%s\n' "$moto"
