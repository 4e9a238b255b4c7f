# shellcheck shell=bash
# Shared by the scripts that need a real moto server (a local AWS: Secrets Manager, STS): start
# one on a free loopback port and stop it. Source it; it defines functions only. Needs python3
# and curl, and `moto_server` (scripts/deps/aws.sh prints where it is).

# shellcheck source=scripts/lib/ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

# moto_start MOTO WORKDIR: starts MOTO (a moto_server) on a free loopback port, logging to
# WORKDIR/moto.log; sets MOTO_PID and MOTO_URL, and waits until it answers.
moto_start() {
    local moto=$1 work=$2 port
    port=$(free_port 1) || return 1
    "$moto" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
    MOTO_PID=$!
    MOTO_URL="http://127.0.0.1:$port"
    export MOTO_PID MOTO_URL
    for _ in $(seq 200); do curl -s -o /dev/null "$MOTO_URL/moto-api/" && return 0; sleep 0.1; done
    echo "moto did not start: $(tail -3 "$work/moto.log")" >&2
    return 1
}

# moto_stop: stops the server moto_start started, if it runs; clears MOTO_PID.
moto_stop() {
    [ -n "${MOTO_PID:-}" ] || return 0
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
}
