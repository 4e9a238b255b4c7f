#!/usr/bin/env bash
# Vault benchmark (issue 3): fetching 50 KV v2 secrets from a local OpenBao, end to end, side
# by side in one run:
#
#   stepsecret run -- true (token)   the release build, 50 variables, VAULT_TOKEN
#   stepsecret run -- true (jwt)     the same, logging in with a CircleCI-shaped OIDC token
#                                    (and revoking the login token afterwards)
#   teller run -- true               teller 2 (crates.io), the same 50 secrets
#   bao kv get, 10 in a shell loop   per secret, and x50 extrapolated
#   curl --parallel                  the floor: the same 50 GETs, one connection each, all at
#                                    once, curl's own start included
#   curl: one jwt login              the round trip a JWT login adds (RSA verification included)
#
# Targets: token auth <= 1.3x the curl floor and >= 3x faster than teller; with the JWT login
# <= 1.3x the floor plus one login round trip. Prints figures; exits 0 even when a peer is
# missing (it says why instead).
#
#   scripts/bench-vault.sh               RUNS=30 scripts/bench-vault.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
N=50
log() { printf 'bench-vault: %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
# shellcheck source=scripts/lib/peers.sh
. scripts/lib/peers.sh
peers_hyperfine
bao=$(scripts/deps/vault.sh)
peers_teller
teller=$TELLER teller_missing=$TELLER_MISSING

log "cargo build --release"
cargo build --release --quiet
bin="$PWD/target/release/stepsecret"

# --- OpenBao with 50 secrets and JWT auth ------------------------------------------------------
# shellcheck source=scripts/lib/openbao.sh
. scripts/lib/openbao.sh
work=$(mktemp -d)
bao_start "$bao" "$work"
trap 'kill $BAO_PID 2>/dev/null; wait $BAO_PID 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export BAO_ADDR="$VAULT_ADDR"

api() { bao_api "$@"; }
for i in $(seq -w 0 $((N - 1))); do
    api POST "secret/data/bench/s$i" "{\"data\":{\"password\":\"pw-$i-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')\"}}"
done

# JWT auth trusting a local RSA key, a CircleCI-shaped role, and a token signed with it.
jwt_setup "$work"
api PUT sys/policies/acl/bench '{"policy":"path \"secret/data/bench/*\" { capabilities = [\"read\"] }"}'
api POST auth/jwt/role/circleci '{"role_type":"jwt","user_claim":"sub","bound_audiences":["org-1"],"bound_claims":{"oidc.circleci.com/project-id":"proj-1"},"token_policies":["bench"],"token_ttl":"5m"}'
jwt=$(jwt_sign "$work" '{"iss":"https://oidc.circleci.com/org/org-1","aud":"org-1","sub":"org/org-1/project/proj-1/user/u-1","oidc.circleci.com/project-id":"proj-1"}')

{
    echo "[env]"
    for i in $(seq -w 0 $((N - 1))); do echo "P$i = \"vault://secret/bench/s$i#password\""; done
} >"$work/token.toml"
{
    printf '[vault]\nauth = "jwt"\nrole = "circleci"\n\n'
    cat "$work/token.toml"
} >"$work/jwt.toml"
{
    echo "providers:"
    echo "  vault:"
    echo "    kind: hashicorp" # teller 2's Vault provider
    echo "    maps:"
    for i in $(seq -w 0 $((N - 1))); do
        echo "      - id: s$i"
        echo "        path: secret/bench/s$i" # teller adds KV v2's data/ itself
    done
} >"$work/teller.yml"

# The floor: the same 50 reads, all at once.
curl_args=(--parallel --parallel-immediate --parallel-max "$N")
for i in $(seq -w 0 $((N - 1))); do
    [ "$i" = 00 ] || curl_args+=(--next)
    curl_args+=(-s -o /dev/null -H 'X-Vault-Token: root' "$VAULT_ADDR/v1/secret/data/bench/s$i")
done
printf '%q ' curl "${curl_args[@]}" >"$work/floor.sh"
printf '%q ' curl -s -o /dev/null -X POST --data-binary "{\"role\":\"circleci\",\"jwt\":\"$jwt\"}" "$VAULT_ADDR/v1/auth/jwt/login" >"$work/login.sh"

# Sanity: every tool gets the values.
export VAULT_TOKEN=root
count=$("$bin" run --spec "$work/token.toml" -- sh -c 'env | grep -c "^P[0-9]*=pw-"')
[ "$count" = "$N" ] || { log "stepsecret (token) set $count variables, expected $N"; exit 1; }
count=$(env -u VAULT_TOKEN CIRCLE_OIDC_TOKEN_V2="$jwt" "$bin" run --spec "$work/jwt.toml" -- sh -c 'env | grep -c "^P[0-9]*=pw-"')
[ "$count" = "$N" ] || { log "stepsecret (jwt) set $count variables, expected $N"; exit 1; }
if [ -n "$teller" ]; then
    tcount=$("$teller" -c "$work/teller.yml" run -- /bin/sh -c 'env | grep -c "^password="' 2>/dev/null || echo 0)
    # teller maps every secret's `password` key onto the same variable: count its reads instead.
    if [ "$tcount" != 1 ]; then teller_missing="teller ran but did not set the variables ($tcount)"; teller=""; fi
fi
"$bao" kv get -field=password secret/bench/s00 >/dev/null

# --- measure ----------------------------------------------------------------------------------
echo "== machine: $(nproc) cores, $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F), load average $(cut -d" " -f1-3 /proc/loadavg)"
echo "== $N KV v2 secrets on local $("$bao" version | cut -d' ' -f1-2), median of $RUNS runs (hyperfine)"
true_bin=$(type -P true)
cmds=("$bin run --spec $work/token.toml -- $true_bin"
    "env -u VAULT_TOKEN CIRCLE_OIDC_TOKEN_V2=$jwt $bin run --spec $work/jwt.toml -- $true_bin"
    "$(cat "$work/floor.sh")" "$(cat "$work/login.sh")")
names=("stepsecret run -- true (token)" "stepsecret run -- true (jwt login + revoke)"
    "curl --parallel floor ($N GETs)" "curl: one jwt login")
if [ -n "$teller" ]; then
    # teller runs its command through duct, which does not search PATH: give it a path.
    cmds+=("$teller -c $work/teller.yml run -- $true_bin")
    names+=("teller run -- true ($("$teller" --version | cut -d' ' -f2))")
fi
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/fast.json" "${cmds[@]}" >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }
loop="for i in 00 01 02 03 04 05 06 07 08 09; do $bao kv get -field=password secret/bench/s\$i >/dev/null; done"
hyperfine --warmup 1 --runs 3 --export-json "$work/loop.json" "$loop" >/dev/null 2>&1

python3 - "$work" "$teller_missing" "${names[@]}" <<'PY'
import json, sys
work, teller_missing, names = sys.argv[1], sys.argv[2], sys.argv[3:]
fast = json.load(open(f"{work}/fast.json"))["results"]
med = {name: r["median"] * 1000 for name, r in zip(names, fast)}
sd = {name: r["stddev"] * 1000 for name, r in zip(names, fast)}
loop10 = json.load(open(f"{work}/loop.json"))["results"][0]["median"] * 1000
token, jwt, floor, login = (med[n] for n in names[:4])
row = lambda name, ms, note="": print(f"  {name:<48} {ms:9.1f} ms  {note}")
for name in names:
    row(name, med[name], f"± {sd[name]:.1f}")
row("bao kv get x10 (shell loop)", loop10, f"= {loop10 / 10:.0f} ms per secret")
row("bao kv get loop, extrapolated to 50 secrets", loop10 * 5)
print()
print("== ratios (targets)")
r = token / floor
print(f"  stepsecret (token) / curl floor        {r:5.2f}x  (target <= 1.3x: {'met' if r <= 1.3 else 'MISSED'})")
bound = 1.3 * floor + login
print(f"  stepsecret (jwt) vs 1.3x floor + login {jwt:5.1f} ms vs {bound:.1f} ms  (target: {'met' if jwt <= bound else 'MISSED'})")
teller = next((n for n in names if n.startswith("teller")), None)
if teller:
    r = med[teller] / token
    print(f"  teller / stepsecret (token)            {r:5.1f}x  (target >= 3x: {'met' if r >= 3 else 'MISSED'})")
else:
    print(f"  teller / stepsecret                      n/a  ({teller_missing or 'teller not available'})")
print(f"  bao loop x50 / stepsecret (token)      {loop10 * 5 / token:5.0f}x")
PY
