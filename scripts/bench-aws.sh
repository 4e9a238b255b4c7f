#!/usr/bin/env bash
# AWS benchmark (issue 4): fetching 50 JSON secrets from a local moto server, end to end,
# side by side in one run:
#
#   stepsecret run -- true      the release build, all 50 secrets (both keys of each, by [expand])
#   teller run -- true          teller 2 (crates.io), the same 50 secrets, all keys
#   aws secretsmanager get-secret-value, 10 in a shell loop (per secret, and x50 extrapolated)
#   curl --parallel             the floor: the same 3 BatchGetSecretValue requests stepsecret
#                               sends (20 + 20 + 10 ids), on 3 parallel connections; moto
#                               accepts any signature whose credential scope names the service
#
# and 50 SecureString parameters in Parameter Store (aws-ssm://), beside:
#
#   aws ssm get-parameter --with-decryption, 10 in a shell loop (per parameter, x50 extrapolated)
#   curl --parallel             the floor: the same 5 GetParameters requests (10 names each,
#                               WithDecryption) stepsecret sends, on 5 parallel connections
#
# Targets: stepsecret >= 4x faster than teller, >= 100x faster than the aws CLI loop (per 50
# secrets), <= 1.5x the curl floor. Prints figures; exits 0 even when a tool is missing (it says
# why instead).
#
#   scripts/bench-aws.sh               RUNS=30 scripts/bench-aws.sh
#   NO_TELLER=1 skips teller (building it takes minutes); BIN=path/to/stepsecret skips the release
#   build (a debug build's figures are not comparable: say so when quoting them).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
N=50
log() { printf 'bench-aws: %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
# shellcheck source=scripts/lib/peers.sh
. scripts/lib/peers.sh
# shellcheck source=scripts/lib/moto.sh
. scripts/lib/moto.sh
peers_hyperfine
moto=$(scripts/deps/aws.sh)
peers_awscli
[ -n "$AWS_CLI" ] || { log "$AWS_CLI_MISSING"; exit 1; }
aws_cli=$AWS_CLI
if [ -n "${NO_TELLER:-}" ]; then
    TELLER="" TELLER_MISSING="skipped (NO_TELLER)"
else
    peers_teller
fi
teller=$TELLER teller_missing=$TELLER_MISSING

if [ -n "${BIN:-}" ]; then
    bin=$(realpath "$BIN")
    log "using $bin, not a release build made here"
else
    log "cargo build --release"
    cargo build --release --quiet
    bin="$PWD/target/release/stepsecret"
fi

# --- moto with 50 JSON secrets ----------------------------------------------------------------
work=$(mktemp -d)
trap 'moto_stop; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
moto_start "$moto" "$work" || exit 1
url=$MOTO_URL

auth="AWS4-HMAC-SHA256 Credential=AKIDBENCH/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
sm() { # operation, json body
    curl -s -f -o /dev/null "$url/" -H "X-Amz-Target: secretsmanager.$1" \
        -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z' \
        -H "Authorization: $auth" --data-binary "$2"
}
for i in $(seq -w 0 $((N - 1))); do
    value=$(printf '{"user_%s":"svc-user-%s","password_%s":"pw-%s-%s"}' "$i" "$i" "$i" "$i" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')")
    sm CreateSecret "$(python3 -c 'import json,sys; print(json.dumps({"Name": sys.argv[1], "SecretString": sys.argv[2]}))' "bench/s$i" "$value")"
done

# 50 SecureString parameters, the same shape of value.
ssm_auth="AWS4-HMAC-SHA256 Credential=AKIDBENCH/20240101/us-east-1/ssm/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
ssm() { # operation, json body
    curl -s -f -o /dev/null "$url/" -H "X-Amz-Target: AmazonSSM.$1" \
        -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z' \
        -H "Authorization: $ssm_auth" --data-binary "$2"
}
for i in $(seq -w 0 $((N - 1))); do
    ssm PutParameter "{\"Name\": \"/bench/p$i\", \"Type\": \"SecureString\", \"Value\": \"pw-$i-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')\"}"
done
{
    echo "[aws]"
    echo "region = \"us-east-1\""
    echo "[env]"
    for i in $(seq -w 0 $((N - 1))); do echo "Q$i = \"aws-ssm:///bench/p$i\""; done
} >"$work/ssm.toml"

# stepsecret: every key of each secret, as teller does.
{
    echo "[aws]"
    echo "region = \"us-east-1\""
    echo "[expand]"
    for i in $(seq -w 0 $((N - 1))); do echo "S${i}_ = \"aws-sm://bench/s$i\""; done
} >"$work/stepsecret.toml"

# stepsecret again, one key of each secret (50 variables): the redactor has half the values.
{
    echo "[env]"
    for i in $(seq -w 0 $((N - 1))); do echo "P$i = \"aws-sm://bench/s$i#password_$i\""; done
} >"$work/one-key.toml"

# teller: one map per secret.
{
    echo "providers:"
    echo "  sm:"
    echo "    kind: aws_secretsmanager"
    echo "    options:"
    echo "      region: us-east-1"
    echo "      endpoint_url: $url"
    echo "      access_key_id: AKIDBENCH"
    echo "      secret_access_key: bench-secret-key"
    echo "    maps:"
    for i in $(seq -w 0 $((N - 1))); do
        echo "      - id: s$i"
        echo "        path: bench/s$i"
    done
} >"$work/teller.yml"

# The floor: stepsecret's 3 batch requests, as curl sends them in parallel.
python3 - "$work" "$N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
ids = [f"bench/s{i:02d}" for i in range(n)]
for k in range(0, n, 20):
    open(f"{work}/batch{k // 20}.json", "w").write(json.dumps({"SecretIdList": ids[k:k + 20]}))
PY
curl_args=(--parallel --parallel-immediate --parallel-max 3)
first=1
for body in "$work"/batch*.json; do
    [ $first = 1 ] || curl_args+=(--next)
    first=0
    curl_args+=(-s -o /dev/null -H 'X-Amz-Target: secretsmanager.BatchGetSecretValue'
        -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z'
        -H "Authorization: $auth" --data-binary "@$body" "$url/")
done
printf '%q ' curl "${curl_args[@]}" >"$work/floor.sh"

# The Parameter Store floor: stepsecret's 5 GetParameters requests, as curl sends them.
python3 - "$work" "$N" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
names = [f"/bench/p{i:02d}" for i in range(n)]
for k in range(0, n, 10):
    open(f"{work}/params{k // 10}.json", "w").write(json.dumps({"Names": names[k:k + 10], "WithDecryption": True}))
PY
ssm_args=(--parallel --parallel-immediate --parallel-max 5)
first=1
for body in "$work"/params*.json; do
    [ $first = 1 ] || ssm_args+=(--next)
    first=0
    ssm_args+=(-s -o /dev/null -H 'X-Amz-Target: AmazonSSM.GetParameters'
        -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z'
        -H "Authorization: $ssm_auth" --data-binary "@$body" "$url/")
done
printf '%q ' curl "${ssm_args[@]}" >"$work/ssm-floor.sh"

export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL="$url" AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent

# Sanity: every tool gets the values (and moto has imported what each request needs).
count=$("$bin" run --spec "$work/stepsecret.toml" -- sh -c 'env | grep -c "^S[0-9]*_"')
[ "$count" = $((2 * N)) ] || { log "stepsecret set $count variables, expected $((2 * N))"; exit 1; }
if [ -n "$teller" ]; then
    tcount=$("$teller" -c "$work/teller.yml" run -- /bin/sh -c 'env | grep -c -E "^(user|password)_"' 2>/dev/null || echo 0)
    [ "$tcount" = $((2 * N)) ] || { teller_missing="teller ran but set $tcount of $((2 * N)) variables"; teller=""; }
fi
sh "$work/floor.sh" >/dev/null 2>&1
got=$(curl -s "$url/" -H 'X-Amz-Target: secretsmanager.BatchGetSecretValue' \
    -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z' \
    -H "Authorization: $auth" --data-binary "@$work/batch0.json" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["SecretValues"]))')
[ "$got" = 20 ] || { log "the floor's batch request returned $got values, expected 20"; exit 1; }
"$aws_cli" secretsmanager get-secret-value --secret-id bench/s00 >/dev/null
count=$("$bin" run --spec "$work/ssm.toml" -- sh -c 'env | grep -c "^Q[0-9]*="')
[ "$count" = "$N" ] || { log "stepsecret set $count parameters, expected $N"; exit 1; }
sh "$work/ssm-floor.sh" >/dev/null 2>&1
got=$(curl -s "$url/" -H 'X-Amz-Target: AmazonSSM.GetParameters' \
    -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z' \
    -H "Authorization: $ssm_auth" --data-binary "@$work/params0.json" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["Parameters"]))')
[ "$got" = 10 ] || { log "the floor's GetParameters request returned $got values, expected 10"; exit 1; }
"$aws_cli" ssm get-parameter --with-decryption --name /bench/p00 >/dev/null

# --- measure ----------------------------------------------------------------------------------
echo "== machine: $(nproc) cores, $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F), load average $(cut -d" " -f1-3 /proc/loadavg)"
echo "== $N JSON secrets (2 keys each) on local moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || true), median of $RUNS runs (hyperfine)"
true_bin=$(type -P true)
cmds=("$bin run --spec $work/stepsecret.toml -- $true_bin" "$(cat "$work/floor.sh")"
    "$bin run --spec $work/one-key.toml -- $true_bin")
names=("stepsecret run -- true (all keys: 100 vars)" "curl --parallel floor (3 batch requests)"
    "stepsecret run -- true (one key each: 50 vars)")
cmds+=("$bin run --spec $work/ssm.toml -- $true_bin" "$(cat "$work/ssm-floor.sh")")
names+=("ssm: stepsecret run -- true (50 parameters)" "ssm: curl --parallel floor (5 GetParameters)")
if [ -n "$teller" ]; then
    # teller runs its command through duct, which does not search PATH: give it a path.
    cmds+=("$teller -c $work/teller.yml run -- $true_bin")
    names+=("teller run -- true ($("$teller" --version | cut -d' ' -f2))")
fi
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/fast.json" "${cmds[@]}" >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }
loop="for i in 00 01 02 03 04 05 06 07 08 09; do $aws_cli secretsmanager get-secret-value --secret-id bench/s\$i >/dev/null; done"
hyperfine --warmup 1 --runs 3 --export-json "$work/cli.json" "$loop" >/dev/null 2>&1
loop="for i in 00 01 02 03 04 05 06 07 08 09; do $aws_cli ssm get-parameter --with-decryption --name /bench/p\$i >/dev/null; done"
hyperfine --warmup 1 --runs 3 --export-json "$work/cli-ssm.json" "$loop" >/dev/null 2>&1
"$bin" --version >/dev/null
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/start.json" "$bin --version" >/dev/null 2>&1

python3 - "$work" "$teller_missing" "$("$aws_cli" --version 2>&1 | cut -d' ' -f1)" "${names[@]}" <<'PY'
import json, sys
work, teller_missing, aws_version, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
fast = json.load(open(f"{work}/fast.json"))["results"]
med = {name: r["median"] * 1000 for name, r in zip(names, fast)}
sd = {name: r["stddev"] * 1000 for name, r in zip(names, fast)}
cli10 = json.load(open(f"{work}/cli.json"))["results"][0]["median"] * 1000
ssm10 = json.load(open(f"{work}/cli-ssm.json"))["results"][0]["median"] * 1000
start = json.load(open(f"{work}/start.json"))["results"][0]["median"] * 1000
ours, floor = med[names[0]], med[names[1]]
row = lambda name, ms, note="": print(f"  {name:<48} {ms:9.1f} ms  {note}")
for name in names:
    row(name, med[name], f"± {sd[name]:.1f}")
row(f"aws secretsmanager get-secret-value x10 ({aws_version})", cli10, f"= {cli10 / 10:.0f} ms per secret")
row("aws CLI loop, extrapolated to 50 secrets", cli10 * 5)
row(f"aws ssm get-parameter x10 ({aws_version})", ssm10, f"= {ssm10 / 10:.0f} ms per parameter")
row("aws ssm loop, extrapolated to 50 parameters", ssm10 * 5)
row("stepsecret --version (process start only)", start)
print()
print("== ratios (targets)")
teller = next((n for n in names if n.startswith("teller")), None)
if teller:
    r = med[teller] / ours
    print(f"  teller / stepsecret        {r:6.1f}x   (target >= 4x: {'met' if r >= 4 else 'MISSED'})")
else:
    print(f"  teller / stepsecret           n/a   ({teller_missing or 'teller not available'})")
r = cli10 * 5 / ours
print(f"  aws CLI x50 / stepsecret   {r:6.0f}x   (target >= 100x: {'met' if r >= 100 else 'MISSED'})")
r = ours / floor
print(f"  stepsecret / curl floor    {r:6.2f}x   (target <= 1.5x: {'met' if r <= 1.5 else 'MISSED'})")
r = med[names[2]] / floor
print(f"    (one key each: {r:.2f}x the floor)")
ssm_ours, ssm_floor = med[names[3]], med[names[4]]
r = ssm10 * 5 / ssm_ours
print(f"  ssm: aws CLI x50 / stepsecret {r:6.0f}x")
r = ssm_ours / ssm_floor
print(f"  ssm: stepsecret / curl floor  {r:6.2f}x")
PY
