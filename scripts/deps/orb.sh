#!/usr/bin/env bash
# Installs what the orb and CI-config tests (scripts/test-orb.sh) need on a fresh Debian machine.
# Idempotent: anything already present is left alone.
#
# - check-jsonschema (PyPI): ships SchemaStore's schemas offline, used as
#   `--builtin-schema vendor.circle-ci` (a packed orb, an example's usage, .circleci/config.yml)
#   and `--builtin-schema vendor.bitbucket-pipelines`.
# - pyyaml (PyPI): the orb packer and the review-rule checks in tests/orb/.
# - shellcheck (apt): lints the orb's scripts as POSIX sh.
# - busybox-static (apt, optional): runs the orb's scripts under busybox sh (as on Alpine).
# - python3, curl, wget: the loopback release server and the install script's downloaders.
#
# When pip refuses global installs (PEP 668), both Python packages go into a private venv at
# ~/.cache/stepsecret/orb-venv; scripts/test-orb.sh looks there too.
set -euo pipefail

log() { printf 'deps/orb: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v python3 >/dev/null || missing+=(python3 python3-pip python3-venv)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v curl >/dev/null || missing+=(curl)
command -v wget >/dev/null || missing+=(wget)
command -v sha256sum >/dev/null || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt_install "${missing[@]}"
fi

# busybox sh is only a stronger check (POSIX sh as on Alpine); its absence is reported as a
# skip by the test, not a failure here.
if ! command -v busybox >/dev/null; then
    log "apt-get install busybox-static"
    apt_install busybox-static || log "busybox-static not installable; the busybox checks will be skipped"
fi

venv="${HOME}/.cache/stepsecret/orb-venv"
has_py_deps() { "$1" -c 'import yaml, check_jsonschema' >/dev/null 2>&1; }

if has_py_deps python3 && command -v check-jsonschema >/dev/null; then
    log "check-jsonschema and pyyaml present: $(command -v check-jsonschema)"
elif [ -x "$venv/bin/python3" ] && has_py_deps "$venv/bin/python3"; then
    log "check-jsonschema and pyyaml present in $venv"
else
    log "pip install check-jsonschema pyyaml"
    if ! python3 -m pip install --quiet --disable-pip-version-check check-jsonschema pyyaml 2>/dev/null \
        || ! has_py_deps python3 || ! command -v check-jsonschema >/dev/null; then
        log "global pip install refused or incomplete: using the venv $venv"
        python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
        "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check check-jsonschema pyyaml
        has_py_deps "$venv/bin/python3" || { log "check-jsonschema/pyyaml installed but not importable"; exit 1; }
    fi
fi
log "shellcheck: $(shellcheck --version | sed -n 's/^version: //p')"
