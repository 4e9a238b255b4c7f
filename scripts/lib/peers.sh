# shellcheck shell=bash
# shellcheck disable=SC2034 # TELLER, TELLER_MISSING, AWS_CLI, AWS_CLI_MISSING are its outputs
# Shared by the benchmarks: installs the peers stepsecret is measured against, on a fresh Debian
# machine, and says why when one cannot be had. Idempotent: anything present is left alone.
# Source it; it defines functions only (messages go to stderr). Needs apt-get (as root or with
# sudo), cargo and python3.
#
#   peers_hyperfine      hyperfine (apt) and curl; fails when hyperfine cannot be installed
#   peers_teller         sets TELLER (a path) or, when it cannot be had, TELLER_MISSING (why);
#                        `cargo install teller --locked` with protobuf-compiler from apt; waits
#                        for a `cargo install teller` already running instead of starting another
#   peers_awscli         sets AWS_CLI (a path) or AWS_CLI_MISSING (why); the one on PATH, else
#                        `pip install awscli` into ~/.cache/stepsecret/awscli-venv

peers_log() { printf 'peers: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

peers_hyperfine() {
    command -v curl >/dev/null || { peers_log "apt-get install curl"; apt_install curl; }
    command -v hyperfine >/dev/null && return 0
    peers_log "apt-get install hyperfine"
    apt_install hyperfine
}

# The log of the teller build, shared with whoever else installs it the same way.
PEERS_TELLER_LOG="${TMPDIR:-/tmp}/teller-install.log"

peers_teller() {
    TELLER="" TELLER_MISSING=""
    local candidate
    # Someone (another script, a person) may be building it already: wait rather than race.
    if pgrep -f '^[^ ]*cargo install teller' >/dev/null 2>&1; then
        peers_log "a 'cargo install teller' is already running: waiting for it (log: $PEERS_TELLER_LOG)"
        while pgrep -f '^[^ ]*cargo install teller' >/dev/null 2>&1; do sleep 5; done
    fi
    for candidate in "$(command -v teller || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/teller"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
            TELLER=$candidate
            return 0
        fi
    done
    if ! command -v cargo >/dev/null; then
        TELLER_MISSING="not installed, and there is no cargo to build it"
        return 0
    fi
    command -v protoc >/dev/null || {
        peers_log "apt-get install protobuf-compiler (teller's build needs protoc)"
        apt_install protobuf-compiler || { TELLER_MISSING="protobuf-compiler (protoc, needed to build teller) could not be installed"; return 0; }
    }
    peers_log "cargo install teller --locked (slow: several minutes; log: $PEERS_TELLER_LOG)"
    if nice -n 5 cargo install teller --locked >"$PEERS_TELLER_LOG" 2>&1; then
        TELLER="${CARGO_HOME:-$HOME/.cargo}/bin/teller"
    else
        TELLER_MISSING="cargo install teller --locked failed: $(grep -m1 -E '^error' "$PEERS_TELLER_LOG" || tail -1 "$PEERS_TELLER_LOG")"
    fi
}

peers_awscli() {
    AWS_CLI="" AWS_CLI_MISSING=""
    local venv="$HOME/.cache/stepsecret/awscli-venv" candidate
    for candidate in "$(command -v aws || true)" "$venv/bin/aws"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
            AWS_CLI=$candidate
            return 0
        fi
    done
    peers_log "pip install awscli (into $venv)"
    if { python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }; } \
        && "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check awscli; then
        AWS_CLI="$venv/bin/aws"
    else
        AWS_CLI_MISSING="pip install awscli into $venv failed"
    fi
}
