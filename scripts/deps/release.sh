#!/usr/bin/env bash
# Installs what scripts/test-release.sh needs on a fresh Debian machine (idempotent): podman +
# runc (the docker shim's engine), Debian's docker-registry (a loopback image registry),
# busybox-static (the pipe image's shell), git, curl, and from PyPI semversioner and pyyaml.
set -euo pipefail
log() { printf 'deps/release: %s\n' "$*" >&2; }

missing=()
for pkg in podman runc docker-registry busybox-static file uidmap git curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# semversioner, PyYAML and check-jsonschema, as scripts/deps/pipe.sh and orb.sh install them
# (into ~/.cache/stepsecret/orb-venv where the system's pip refuses).
bash "$(dirname "$0")/pipe.sh"
bash "$(dirname "$0")/orb.sh"
log "ok"
