# shellcheck shell=bash
# Shared by the scripts that need a real OpenBao: start a dev server on free loopback ports,
# call its API as root, configure JWT auth trusting a local RSA key, and sign OIDC tokens.
# Source it; it defines functions only. Needs python3, curl, openssl and `bao` (deps/vault.sh).

# shellcheck source=scripts/lib/ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

# bao_start BAO WORKDIR: starts `bao server -dev` (root token "root") on a free port P with P+1
# also free (dev mode binds both); sets BAO_PID and VAULT_ADDR, and waits until it answers.
bao_start() {
    local bao=$1 work=$2 port
    port=$(free_port 2) || return 1
    "$bao" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" >"$work/bao.log" 2>&1 &
    BAO_PID=$!
    VAULT_ADDR="http://127.0.0.1:$port"
    export VAULT_ADDR BAO_PID
    for _ in $(seq 200); do curl -s -f -o /dev/null "$VAULT_ADDR/v1/sys/health" && return 0; sleep 0.05; done
    echo "OpenBao did not start: $(tail -3 "$work/bao.log")" >&2
    return 1
}

# bao_api METHOD PATH [JSON]: one API call with the root token; fails on an error status.
bao_api() {
    curl -s -f -o /dev/null -X "$1" -H 'X-Vault-Token: root' ${3:+--data-binary "$3"} "$VAULT_ADDR/v1/$2"
}

# jwt_setup WORKDIR: makes an RSA key and enables JWT auth at auth/jwt trusting it.
jwt_setup() {
    local work=$1 pub
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/jwt-key.pem" 2>/dev/null
    pub=$(openssl pkey -in "$work/jwt-key.pem" -pubout | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')
    bao_api POST sys/auth/jwt '{"type":"jwt"}'
    bao_api POST auth/jwt/config "{\"jwt_validation_pubkeys\":[$pub]}"
}

# jwt_sign WORKDIR CLAIMS_JSON: prints an RS256 token with these claims (iat/nbf/exp added).
jwt_sign() {
    local work=$1 claims=$2 now header payload sig
    b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
    now=$(date +%s)
    header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
    payload=$(printf '%s' "$claims" | python3 -c '
import json, sys
c = json.load(sys.stdin); n = int(sys.argv[1])
c.update(iat=n, nbf=n, exp=n + 3600)
print(json.dumps(c), end="")' "$now" | b64url)
    sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$work/jwt-key.pem" | b64url)
    printf '%s.%s.%s' "$header" "$payload" "$sig"
}
