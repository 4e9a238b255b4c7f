#!/usr/bin/env bash
# One benchmark, one table: stepsecret beside its peers, on the same machine, in the same run,
# against the same secrets. Installs what it needs (hyperfine and protobuf-compiler from apt,
# teller with cargo, the aws CLI in a venv, OpenBao and moto with scripts/deps/*.sh).
#
#   Fetch N secrets and run `true`, N = 1, 10, 50, 200:
#     OpenBao (KV v2)   stepsecret run (JWT login with a CircleCI-shaped token, and revoke;
#                       and with VAULT_TOKEN), teller run (hashicorp_vault, VAULT_TOKEN),
#                       bao agent (exec + one env_template per secret, token_file auto_auth),
#                       bao kv get in a shell loop (10 timed, extrapolated), and the floor:
#                       curl --parallel sending the same N GETs
#     moto (AWS SM)     stepsecret run, teller run (aws_secretsmanager), aws secretsmanager
#                       get-secret-value in a loop (a few timed, extrapolated), and the floor:
#                       the same BatchGetSecretValue requests (20 ids each) by curl --parallel
#   The redactor, 100 secrets: stepsecret redact, teller redact (dotenv provider holding the
#     same 100 values) and cat, in GB/s over a ~128 MiB log, and the latency a line takes
#     through each filter (median and p99 of 1000 lines)
#   Binary size, cold start (stepsecret --version), peak RSS of a 50-secret Vault run
#
#   scripts/bench.sh                   prints the table
#   scripts/bench.sh --update-readme   also writes it into README.md between the bench markers
#   RUNS=20 scripts/bench.sh           hyperfine runs for the fast commands (default 10);
#                                      SLOW_RUNS for bao agent and the CLI loops (default 3),
#                                      MB for the redactor's log (default 128)
set -euo pipefail
cd "$(dirname "$0")/.."

update_readme=""
case "${1:-}" in
    --update-readme) update_readme=1 ;;
    "") ;;
    *) echo "usage: scripts/bench.sh [--update-readme]" >&2; exit 2 ;;
esac
RUNS=${RUNS:-10}
SLOW_RUNS=${SLOW_RUNS:-3}
MB=${MB:-128}
SIZES=(1 10 50 200)
MAX=200
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log() { printf 'bench: %s\n' "$*" >&2; }

# --- tools ------------------------------------------------------------------------------------
# shellcheck source=scripts/lib/peers.sh
. scripts/lib/peers.sh
# shellcheck source=scripts/lib/openbao.sh
. scripts/lib/openbao.sh
# shellcheck source=scripts/lib/moto.sh
. scripts/lib/moto.sh
peers_hyperfine
bao=$(scripts/deps/vault.sh)
moto=$(scripts/deps/aws.sh)
peers_awscli
peers_teller
log "cargo build --release"
cargo build --release --quiet
bin="$PWD/target/release/stepsecret"
true_bin=$(type -P true)

work=$(mktemp -d)
res="$work/results"
mkdir -p "$res"
BAO_PID="" MOTO_PID=""
cleanup() {
    [ -z "$BAO_PID" ] || { kill "$BAO_PID" 2>/dev/null; wait "$BAO_PID" 2>/dev/null || true; }
    moto_stop
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# measure KEY RUNS HYPERFINE_ARGS...: the median lands in $res/KEY.json, or why not in KEY.err.
measure() {
    local key=$1 runs=$2
    shift 2
    log "measure $key ($runs runs)"
    if ! hyperfine --style none --runs "$runs" --export-json "$res/$key.json" "$@" >"$res/$key.log" 2>&1; then
        rm -f "$res/$key.json"
        printf 'failed: %s\n' "$(grep -m1 -iE 'error|non-zero' "$res/$key.log" | cut -c1-160)" >"$res/$key.err"
        log "$key $(cat "$res/$key.err")"
    fi
}
skip() { printf '%s\n' "$2" >"$res/$1.err"; }
seq3() { seq -f '%03g' 0 $(($1 - 1)); }

versions="$work/versions"
: >"$versions"
version() { printf '%s\t%s\n' "$1" "$2" >>"$versions"; }
if [ -n "$TELLER" ]; then version teller "$("$TELLER" --version 2>&1 | head -1)"; fi
if [ -n "$AWS_CLI" ]; then version aws "$("$AWS_CLI" --version 2>&1 | cut -d' ' -f1)"; fi

# --- OpenBao: MAX secrets, JWT auth, a CircleCI-shaped token ----------------------------------
bao_start "$bao" "$work"
export BAO_ADDR="$VAULT_ADDR"
version bao "$("$bao" version | cut -d' ' -f1-2)"
log "OpenBao at $VAULT_ADDR: writing $MAX secrets"
for i in $(seq3 $MAX); do
    bao_api POST "secret/data/bench/s$i" "{\"data\":{\"password\":\"pw-$i-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')\"}}"
done
jwt_setup "$work"
bao_api PUT sys/policies/acl/bench '{"policy":"path \"secret/data/bench/*\" { capabilities = [\"read\"] }"}'
bao_api POST auth/jwt/role/circleci '{"role_type":"jwt","user_claim":"sub","bound_audiences":["org-1"],"bound_claims":{"oidc.circleci.com/project-id":"proj-1"},"token_policies":["bench"],"token_ttl":"5m"}'
jwt=$(jwt_sign "$work" '{"iss":"https://oidc.circleci.com/org/org-1","aud":"org-1","sub":"org/org-1/project/proj-1/user/u-1","oidc.circleci.com/project-id":"proj-1"}')
export VAULT_TOKEN=root
printf root >"$work/token"

# bao agent in process supervisor mode: logs in from a token file, renders one env_template per
# secret, starts the command with them, and exits with it.
agent_hcl() { # N, the command as an HCL list's items
    echo "vault { address = \"$VAULT_ADDR\" }"
    echo "auto_auth {"
    echo "  method \"token_file\" { config = { token_file_path = \"$work/token\" } }"
    echo "}"
    echo "template_config { exit_on_retry_failure = true }"
    for i in $(seq3 "$1"); do
        echo "env_template \"P$i\" {"
        echo "  contents = \"{{ with secret \\\"secret/data/bench/s$i\\\" }}{{ .Data.data.password }}{{ end }}\""
        echo "  error_on_missing_key = true"
        echo "}"
    done
    echo "exec {"
    echo "  command = [$2]"
    echo "  restart_on_secret_changes = \"never\""
    echo "}"
}
for n in "${SIZES[@]}"; do
    {
        echo "[env]"
        for i in $(seq3 "$n"); do echo "P$i = \"vault://secret/bench/s$i#password\""; done
    } >"$work/v-token-$n.toml"
    { printf '[vault]\nauth = "jwt"\nrole = "circleci"\n\n'; cat "$work/v-token-$n.toml"; } >"$work/v-jwt-$n.toml"
    {
        echo "providers:"
        echo "  vault:"
        echo "    kind: hashicorp" # the hashicorp_vault provider
        echo "    maps:"
        for i in $(seq3 "$n"); do
            echo "      - id: s$i"
            echo "        path: secret/bench/s$i" # teller (vaultrs) adds the data/ of KV v2
        done
    } >"$work/v-teller-$n.yml"
    agent_hcl "$n" "\"$true_bin\"" >"$work/v-agent-$n.hcl"
    args=(--parallel --parallel-immediate --parallel-max "$n")
    for i in $(seq3 "$n"); do
        [ "$i" = 000 ] || args+=(--next)
        args+=(-s -o /dev/null -H 'X-Vault-Token: root' "$VAULT_ADDR/v1/secret/data/bench/s$i")
    done
    printf '%q ' curl "${args[@]}" >"$work/v-floor-$n.sh"
    # The floor that does the JWT row's work: curl logs in with the same JWT, sends the same N
    # GETs in parallel with the token it got (OpenBao does more per request for a non-root
    # token than for root), then revokes it.
    {
        echo 'set -e'
        printf 't=$(curl -s -X POST --data-binary %q %q | sed -n %q)\n' \
            "{\"role\":\"circleci\",\"jwt\":\"$jwt\"}" "$VAULT_ADDR/v1/auth/jwt/login" \
            's/.*"client_token":"\([^"]*\)".*/\1/p'
        printf 'curl --parallel --parallel-immediate --parallel-max %s' "$n"
        for i in $(seq3 "$n"); do
            [ "$i" = 000 ] || printf ' --next'
            printf ' -s -o /dev/null -H "X-Vault-Token: $t" %q' "$VAULT_ADDR/v1/secret/data/bench/s$i"
        done
        echo
        printf 'curl -s -o /dev/null -X POST -H "X-Vault-Token: $t" %q\n' "$VAULT_ADDR/v1/auth/token/revoke-self"
    } >"$work/v-jwtfloor-$n.sh"
done

# Sanity, with the most secrets: every tool gets every value (else its rows say why).
count=$(env -u VAULT_TOKEN CIRCLE_OIDC_TOKEN_V2="$jwt" "$bin" run --spec "$work/v-jwt-$MAX.toml" -- sh -c 'env | grep -c "^P[0-9]*=pw-"')
[ "$count" = $MAX ] || { log "stepsecret (jwt) set $count of $MAX variables"; exit 1; }
count=$("$bin" run --spec "$work/v-token-$MAX.toml" -- sh -c 'env | grep -c "^P[0-9]*=pw-"')
[ "$count" = $MAX ] || { log "stepsecret (token) set $count of $MAX variables"; exit 1; }
vault_teller=$TELLER vault_teller_missing=$TELLER_MISSING
if [ -n "$vault_teller" ]; then
    # teller maps every secret's `password` key onto one variable: check that it read them all.
    if ! out=$("$vault_teller" -c "$work/v-teller-$MAX.yml" export env 2>&1); then
        vault_teller="" vault_teller_missing="teller failed: $(printf '%s' "$out" | grep -m1 . | cut -c1-120)"
    elif ! "$vault_teller" -c "$work/v-teller-$MAX.yml" run -- /bin/sh -c 'env | grep -q "^password=pw-"' 2>/dev/null; then
        vault_teller="" vault_teller_missing="teller run did not set the variable"
    fi
fi
agent_hcl $MAX "\"/bin/sh\", \"-c\", \"env | grep -c ^P[0-9]*=pw- >$work/agent-count\"" >"$work/v-agent-check.hcl"
agent_missing=""
if ! timeout 60 "$bao" agent -log-level=error -config="$work/v-agent-check.hcl" >"$work/agent.log" 2>&1; then
    agent_missing="bao agent failed: $(grep -m1 -i error "$work/agent.log" | cut -c1-120)"
elif [ "$(cat "$work/agent-count" 2>/dev/null)" != $MAX ]; then
    agent_missing="bao agent set $(cat "$work/agent-count" 2>/dev/null) of $MAX variables"
fi
"$bao" kv get -field=password secret/bench/s000 >/dev/null

# --- Vault: measure -----------------------------------------------------------------------------
for n in "${SIZES[@]}"; do
    measure "v-ss-jwt-$n" "$RUNS" -N --warmup 2 \
        "env -u VAULT_TOKEN CIRCLE_OIDC_TOKEN_V2=$jwt $bin run --spec $work/v-jwt-$n.toml -- $true_bin"
    measure "v-ss-token-$n" "$RUNS" -N --warmup 2 "$bin run --spec $work/v-token-$n.toml -- $true_bin"
    measure "v-floor-$n" "$RUNS" -N --warmup 2 "$(cat "$work/v-floor-$n.sh")"
    measure "v-jwtfloor-$n" "$RUNS" -N --warmup 2 "sh $work/v-jwtfloor-$n.sh"
    if [ -n "$vault_teller" ]; then
        # teller runs its command through duct, which does not search PATH: give it a path.
        measure "v-teller-$n" "$RUNS" -N --warmup 1 "$vault_teller -c $work/v-teller-$n.yml run -- $true_bin"
    else
        skip "v-teller-$n" "$vault_teller_missing"
    fi
    if [ -z "$agent_missing" ]; then
        measure "v-agent-$n" "$SLOW_RUNS" -N --warmup 0 "$bao agent -log-level=error -config=$work/v-agent-$n.hcl"
    else
        skip "v-agent-$n" "$agent_missing"
    fi
done
# Where the JWT row's time goes: the audit record's durations of 20 runs with 50 secrets.
for _ in $(seq 20); do
    env -u VAULT_TOKEN CIRCLE_OIDC_TOKEN_V2="$jwt" "$bin" run --audit-log "$work/v-phases.jsonl" \
        --spec "$work/v-jwt-50.toml" -- "$true_bin"
done
python3 - "$work/v-phases.jsonl" "$res/v-phases.json" <<'PY'
import json, statistics, sys
runs = [json.loads(line)["durations_ms"] for line in open(sys.argv[1])]
keys = ["resolve", "vault login", "vault mounts", "vault reads", "vault revoke", "command", "cleanup"]
json.dump({k: statistics.median(r[k] for r in runs) for k in keys if all(k in r for r in runs)},
          open(sys.argv[2], "w"))
PY
measure v-kvloop "$SLOW_RUNS" --warmup 1 \
    "for i in $(seq3 10 | xargs); do $bao kv get -field=password secret/bench/s\$i >/dev/null; done"
python3 - "$res/v-rss.json" "$bin" "$work/v-jwt-50.toml" "$jwt" <<'PY'
import json, os, resource, subprocess, sys
out, bin, spec, jwt = sys.argv[1:]
env = {k: v for k, v in os.environ.items() if k != "VAULT_TOKEN"}
env["CIRCLE_OIDC_TOKEN_V2"] = jwt
subprocess.run([bin, "run", "--spec", spec, "--", "true"], env=env, check=True)
json.dump({"mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}, open(out, "w"))
PY
kill "$BAO_PID" 2>/dev/null || true
wait "$BAO_PID" 2>/dev/null || true
BAO_PID=""

# --- moto: MAX JSON secrets -------------------------------------------------------------------
moto_start "$moto" "$work" || exit 1
url=$MOTO_URL
version moto "moto $("$(dirname "$(readlink -f "$moto")")/python3" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
auth="AWS4-HMAC-SHA256 Credential=AKIDBENCH/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
log "moto at $url: writing $MAX secrets"
python3 - "$url" "$auth" "$MAX" "$work" "${SIZES[@]}" <<'PY'
import json, os, sys, urllib.request
url, auth, total, work, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
def call(target, body):
    req = urllib.request.Request(url + "/", data=json.dumps(body).encode(), headers={
        "X-Amz-Target": "secretsmanager." + target, "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Date": "20240101T000000Z", "Authorization": auth})
    return json.load(urllib.request.urlopen(req))
for i in range(total):
    value = {f"user_{i:03d}": f"svc-user-{i:03d}", f"password_{i:03d}": f"pw-{i:03d}-{os.urandom(12).hex()}"}
    call("CreateSecret", {"Name": f"bench/s{i:03d}", "SecretString": json.dumps(value)})
ids = [f"bench/s{i:03d}" for i in range(total)]
got = call("BatchGetSecretValue", {"SecretIdList": ids[:20]})
assert len(got["SecretValues"]) == min(20, total), got["Errors"]
for n in map(int, sizes):
    for k in range(0, n, 20):
        json.dump({"SecretIdList": ids[k:min(n, k + 20)]}, open(f"{work}/a-batch-{n}-{k // 20}.json", "w"))
PY
for n in "${SIZES[@]}"; do
    {
        printf '[aws]\nregion = "us-east-1"\n[expand]\n'
        for i in $(seq3 "$n"); do echo "S${i}_ = \"aws-sm://bench/s$i\""; done
    } >"$work/a-ss-$n.toml"
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
        for i in $(seq3 "$n"); do
            echo "      - id: s$i"
            echo "        path: bench/s$i"
        done
    } >"$work/a-teller-$n.yml"
    batches=("$work"/a-batch-"$n"-*.json)
    args=(--parallel --parallel-immediate --parallel-max "${#batches[@]}")
    first=1
    for body in "${batches[@]}"; do
        [ $first = 1 ] || args+=(--next)
        first=0
        args+=(-s -o /dev/null -H 'X-Amz-Target: secretsmanager.BatchGetSecretValue'
            -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z'
            -H "Authorization: $auth" --data-binary "@$body" "$url/")
    done
    printf '%q ' curl "${args[@]}" >"$work/a-floor-$n.sh"
done

export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL="$url" AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent

count=$("$bin" run --spec "$work/a-ss-$MAX.toml" -- sh -c 'env | grep -c "^S[0-9]*_"')
[ "$count" = $((2 * MAX)) ] || { log "stepsecret set $count of $((2 * MAX)) variables from moto"; exit 1; }
aws_teller=$TELLER aws_teller_missing=$TELLER_MISSING
if [ -n "$aws_teller" ]; then
    tcount=$("$aws_teller" -c "$work/a-teller-$MAX.yml" run -- /bin/sh -c 'env | grep -c -E "^(user|password)_"' 2>/dev/null || echo 0)
    [ "$tcount" = $((2 * MAX)) ] || { aws_teller_missing="teller ran but set $tcount of $((2 * MAX)) variables"; aws_teller=""; }
fi
aws_cli_missing=$AWS_CLI_MISSING
if [ -n "$AWS_CLI" ] && ! "$AWS_CLI" secretsmanager get-secret-value --secret-id bench/s000 >/dev/null 2>"$work/aws.err"; then
    aws_cli_missing="aws secretsmanager get-secret-value failed: $(head -c 120 "$work/aws.err")"
fi

# --- AWS: measure -------------------------------------------------------------------------------
for n in "${SIZES[@]}"; do
    measure "a-ss-$n" "$RUNS" -N --warmup 2 "$bin run --spec $work/a-ss-$n.toml -- $true_bin"
    measure "a-floor-$n" "$RUNS" -N --warmup 2 "$(cat "$work/a-floor-$n.sh")"
    if [ -n "$aws_teller" ]; then
        measure "a-teller-$n" "$RUNS" -N --warmup 1 "$aws_teller -c $work/a-teller-$n.yml run -- $true_bin"
    else
        skip "a-teller-$n" "$aws_teller_missing"
    fi
done
if [ -z "$aws_cli_missing" ]; then
    measure a-cliloop "$SLOW_RUNS" --warmup 1 \
        "for i in 000 001 002; do $AWS_CLI secretsmanager get-secret-value --secret-id bench/s\$i >/dev/null; done"
else
    skip a-cliloop "$aws_cli_missing"
fi
moto_stop

# --- The redactor: 100 secrets ----------------------------------------------------------------
log "redactor: a $MB MiB log, 100 secrets"
"$bin" keygen -o "$work/id.txt" >"$work/recipient" 2>/dev/null
export STEPSECRET_AGE_IDENTITY_FILE="$work/id.txt"
python3 scripts/bench_data.py secrets 100 "$work/100.env"
"$bin" seal -r "$(cat "$work/recipient")" -o "$work/100.env.age" "$work/100.env" 2>/dev/null
{ echo "[expand]"; echo "\"\" = \"age://100.env.age\""; } >"$work/100.toml"
python3 scripts/bench_data.py log "$work/100.env" "$MB" 100 "$work/dirty.log"
stat -c %s "$work/dirty.log" >"$res/log-bytes"
# teller: the same 100 values from its dotenv provider (it masks them raw; no encoded forms).
{
    echo "providers:"
    echo "  env:"
    echo "    kind: dotenv"
    echo "    maps:"
    echo "      - id: all"
    echo "        path: $work/100.env"
} >"$work/r-teller.yml"
redact_teller=$TELLER redact_teller_missing=$TELLER_MISSING
if [ -n "$redact_teller" ]; then
    raw=$(head -c 2000000 "$work/dirty.log" | python3 -c '
import sys
values = [l.split("=", 1)[1].strip().strip("\x27") for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for line in sys.stdin if any(v in line for v in values)))' "$work/100.env")
    masked=$(head -c 2000000 "$work/dirty.log" | "$redact_teller" -c "$work/r-teller.yml" redact 2>"$work/teller-redact.err" | grep -c REDACTED || true)
    if [ "$masked" = 0 ]; then
        redact_teller="" redact_teller_missing="teller redact masked nothing ($(head -c 120 "$work/teller-redact.err"))"
    fi
    printf '%s %s\n' "$masked" "$raw" >"$res/r-teller-masked"
fi
head -c 2000000 "$work/dirty.log" | "$bin" redact --spec "$work/100.toml" | grep -c 'masked:' >"$res/r-ss-masked" || true
measure r-cat 3 -N --warmup 1 "sh -c 'cat $work/dirty.log | cat > /dev/null'"
measure r-ss 3 -N --warmup 1 "sh -c 'cat $work/dirty.log | $bin redact --spec $work/100.toml > /dev/null'"
if [ -n "$redact_teller" ]; then
    measure r-teller 3 -N --warmup 1 "sh -c 'cat $work/dirty.log | $redact_teller -c $work/r-teller.yml redact > /dev/null'"
else
    skip r-teller "$redact_teller_missing"
fi
# Latency: a line written into the filter, timed until it comes out (1000 lines).
head -n 1100 "$work/dirty.log" >"$work/lines"
latency() { # key, command...
    local key=$1
    shift
    log "latency $key"
    python3 - "$work/lines" "$res/$key.json" "$@" <<'PY' || printf 'failed: see the driver\n' >"$res/$key.err"
import json, os, select, statistics, subprocess, sys, time
lines = open(sys.argv[1], "rb").read().splitlines(keepends=True)
out, cmd = sys.argv[2], sys.argv[3:]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
fin, fout = p.stdin.fileno(), p.stdout.fileno()
times = []
for n, line in enumerate(lines):
    t = time.perf_counter_ns()
    os.write(fin, line)
    got = b""
    while not got.endswith(b"\n"):
        if not select.select([fout], [], [], 2.0)[0]:
            p.kill()
            json.dump({"error": "a line did not come out within 2 s (it buffers)"}, open(out, "w"))
            sys.exit(0)
        got += os.read(fout, 65536)
    if n >= 100:  # the first 100 warm up
        times.append((time.perf_counter_ns() - t) / 1000)
p.stdin.close()
p.wait()
times.sort()
json.dump({"median": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1], "n": len(times)}, open(out, "w"))
PY
}
latency l-cat cat
latency l-ss "$bin" redact --spec "$work/100.toml"
if [ -n "$redact_teller" ]; then latency l-teller "$redact_teller" -c "$work/r-teller.yml" redact; fi

# --- Size, cold start -------------------------------------------------------------------------
measure start $((RUNS * 5)) -N --warmup 5 "$bin --version"
stat -c %s "$bin" >"$res/size-release"
static=dist/stepsecret-x86_64-unknown-linux-musl
if [ -f "$static" ]; then stat -c %s "$static" >"$res/size-static"; fi

# --- The table ----------------------------------------------------------------------------------
elapsed=$(($(date +%s) - started))
table="$work/table.md"
python3 - "$res" "$versions" "$table" "$RUNS" "$SLOW_RUNS" "$elapsed" "$load_start" \
    "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(date -u '+%F %H:%M UTC')" \
    "${TELLER_MISSING:-}" "${SIZES[@]}" <<'PY'
import json, os, sys
res, versions, table, runs, slow_runs, elapsed, load, cores, cpu, date, teller_missing = sys.argv[1:12]
sizes = [int(n) for n in sys.argv[12:]]
ver = dict(l.rstrip("\n").split("\t", 1) for l in open(versions) if "\t" in l)

def get(key):
    """(median ms, None) or (None, why)."""
    path = os.path.join(res, key)
    if os.path.exists(path + ".json"):
        return json.load(open(path + ".json"))["results"][0]["median"] * 1000, None
    if os.path.exists(path + ".err"):
        return None, open(path + ".err").read().strip()
    return None, "not measured"

def ms(v):
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"

def cell(v, ratio=None, suffix="x"):
    if v is None:
        return "n/a"
    return ms(v) + (f" ({ratio:.1f}{suffix})" if ratio is not None else "")

out = []
w = out.append
w(f"Measured {date} by `scripts/bench.sh`: {cores} cores ({cpu}), load average at the start "
  f"{load}, {int(elapsed) // 60} min {int(elapsed) % 60} s in all. Medians of {runs} hyperfine runs "
  f"({slow_runs} for bao agent and the CLI loops). Everything ran on this machine against local "
  f"servers ({ver.get('bao', 'OpenBao')}, {ver.get('moto', 'moto')}), so the figures are the clients' "
  "own cost plus loopback round trips; a remote server adds its latency to every row.")
w("")

def fetch_table(title, ss_rows, base_key, peers, floor_key, floor_name, more_floors=()):
    # A row may name its own floor (the JWT row: the floor that logs in the same way).
    ss_rows = [row if len(row) == 3 else (*row, floor_key) for row in ss_rows]
    base_name = {k: n for k, n, _ in ss_rows}[base_key].split(", ", 1)[-1] if len(ss_rows) > 1 else "stepsecret"
    w(f"**{title}** (median; in brackets: stepsecret ÷ the floor, or the peer ÷ stepsecret"
      + (f" with the same auth, {base_name}" if len(ss_rows) > 1 else "") + ")")
    w("")
    w("| | " + " | ".join(f"{n} secret{'s' if n > 1 else ''}" for n in sizes) + " |")
    w("|---|" + "---|" * len(sizes))
    base = {}
    for key, name, row_floor in ss_rows:
        cells = []
        for n in sizes:
            v, why = get(f"{key}-{n}")
            f, _ = get(f"{row_floor}-{n}")
            if key == base_key:
                base[n] = v
            cells.append(cell(v, v / f if v and f else None, "x floor") if v else f"n/a: {why}")
        w(f"| {name} | " + " | ".join(cells) + " |")
    for name, fn, wait in peers:
        cells, why_all = [], None
        for n in sizes:
            v, why = fn(n)
            if v is None:
                why_all = why
                cells.append("n/a")
            elif wait and v > wait:
                cells.append(f"{ms(v)} ({v / base[n]:.0f}x; {ms(v - wait)} + its {wait / 1000:.0f} s wait)" if base.get(n) else ms(v))
            else:
                cells.append(cell(v, v / base[n] if base.get(n) else None))
        if why_all and all(c == "n/a" for c in cells):
            w(f"| {name} | n/a: {why_all} " + "| " * (len(sizes) - 1) + "|")
        else:
            w(f"| {name} | " + " | ".join(cells) + " |")
    for key, name in [(floor_key, floor_name), *more_floors]:
        cells = []
        for n in sizes:
            v, why = get(f"{key}-{n}")
            cells.append(ms(v) if v else f"n/a: {why}")
        w(f"| {name} | " + " | ".join(cells) + " |")
    w("")

teller = ver.get("teller", "teller")
kv10, kv_why = get("v-kvloop")
fetch_table(
    "Fetch N secrets from OpenBao (KV v2) and run `true`",
    [("v-ss-jwt", "`stepsecret run -- true`, JWT login (CircleCI-shaped token) + revoke (÷ the floor with the same login)", "v-jwtfloor"),
     ("v-ss-token", "`stepsecret run -- true`, VAULT_TOKEN")], "v-ss-token",
    [(f"`{teller} run -- true`, VAULT_TOKEN", lambda n: get(f"v-teller-{n}"), 0),
     (f"`bao agent` ({ver.get('bao', 'bao')}): exec + one env_template per secret, token_file auto_auth; "
      "it exits with the command, but waits a fixed 2 s (its exec server's debounce) after rendering before it starts it",
      lambda n: get(f"v-agent-{n}"), 2000),
     ("`bao kv get` in a shell loop (10 timed: per secret × N)",
      lambda n: (kv10 / 10 * n, None) if kv10 else (None, kv_why), 0)],
    "v-floor", "floor: `curl --parallel`, the same N GETs (no login)",
    [("v-jwtfloor", "floor with the same login: curl logs in with the same JWT, sends the same N GETs in parallel with its token, then revokes it")])
phases = json.load(open(os.path.join(res, "v-phases.json"))) if os.path.exists(os.path.join(res, "v-phases.json")) else {}
if phases:
    w("Where the JWT row's time goes, 50 secrets (medians of 20 runs, from the audit record's "
      "`durations_ms`; the login token is revoked in the background while the command starts): "
      + ", ".join(f"{k} {ms(v)}" for k, v in phases.items()) + ".")
    w("")

cli3, cli_why = get("a-cliloop")
fetch_table(
    "Fetch N JSON secrets from AWS Secrets Manager (moto) and run `true`",
    [("a-ss", "`stepsecret run -- true`, every key of each secret")], "a-ss",
    [(f"`{teller} run -- true`", lambda n: get(f"a-teller-{n}"), 0),
     (f"`aws secretsmanager get-secret-value` in a loop ({ver.get('aws', 'aws')}; 3 timed: per secret × N)",
      lambda n: (cli3 / 3 * n, None) if cli3 else (None, cli_why), 0)],
    "a-floor", "floor: `curl --parallel`, the same BatchGetSecretValue requests (20 ids each)")

size = int(open(os.path.join(res, "log-bytes")).read())
def lat(key):
    p = os.path.join(res, key + ".json")
    if not os.path.exists(p):
        e = os.path.join(res, key + ".err")
        return None, open(e).read().strip() if os.path.exists(e) else "not measured"
    d = json.load(open(p))
    return (d, None) if "median" in d else (None, d.get("error"))
w(f"**The redactor, 100 secrets, a {size / 2**20:.0f} MiB log (1 line in 100 holds one: raw, base64 or "
  "percent-encoded), through a pipe**")
w("")
w("| | throughput (time) | time ÷ stepsecret's | latency per line, median | p99 | masks |")
w("|---|---|---|---|---|---|")
ss_t, _ = get("r-ss")
ss_masked = open(os.path.join(res, "r-ss-masked")).read().strip() if os.path.exists(os.path.join(res, "r-ss-masked")) else "?"
def red_row(name, tkey, lkey, masks):
    t, why = get(tkey)
    l, lwhy = lat(lkey)
    if t is None and l is None:
        w(f"| {name} | n/a: {why} | | | | {masks} |")
        return
    rate = size / (t / 1000) / 1e9 if t else 0
    rate = f"{rate:.2f} GB/s" if rate >= 0.1 else f"{rate * 1000:.1f} MB/s"
    thr = f"{rate} ({ms(t)})" if t else f"n/a: {why}"
    cat_t, _ = get("r-cat")
    if tkey == "r-ss":
        ratio = f"{t / cat_t:.1f}x cat's time" if t and cat_t else ""
    elif tkey == "r-cat":
        ratio = ""
    else:
        ratio = f"{t / ss_t:.1f}x" if t and ss_t else ""
    lm = f"{l['median']:.0f} µs" if l else f"n/a: {lwhy}"
    lp = f"{l['p99']:.0f} µs" if l else ""
    w(f"| {name} | {thr} | {ratio} | {lm} | {lp} | {masks} |")
red_row("`stepsecret redact`", "r-ss", "l-ss",
        f"raw, base64 (both alphabets, inside longer base64 too), percent-encoded, JSON-escaped; {ss_masked} lines masked in the first 2 MB")
tm = os.path.join(res, "r-teller-masked")
tmasks = "raw values only, whole lines (it reads line by line, flushes each)"
if os.path.exists(tm):
    m, raw = open(tm).read().split()
    tmasks += f"; {m} lines masked in the first 2 MB, of {raw} holding a raw value"
red_row(f"`{teller} redact` (dotenv provider, the same 100 values)", "r-teller", "l-teller", tmasks)
red_row("`cat` (ceiling)", "r-cat", "l-cat", "nothing")
w("")

start, swhy = get("start")
rss = json.load(open(os.path.join(res, "v-rss.json")))["mb"] if os.path.exists(os.path.join(res, "v-rss.json")) else None
sizes_txt = f"{int(open(os.path.join(res, 'size-release')).read()) / 2**20:.1f} MiB (release build)"
sp = os.path.join(res, "size-static")
sizes_txt += f", {int(open(sp).read()) / 2**20:.1f} MiB (dist/stepsecret-x86_64-unknown-linux-musl, static)" if os.path.exists(sp) else ", no dist/stepsecret-x86_64-unknown-linux-musl here (scripts/build-static.sh makes it)"
w("| stepsecret | |")
w("|---|---|")
w(f"| binary size | {sizes_txt} |")
w(f"| cold start, `stepsecret --version` (hyperfine -N) | {cell(start) if start else 'n/a: ' + str(swhy)} |")
w(f"| peak RSS, `stepsecret run -- true` with 50 Vault secrets, JWT login (getrusage of the child) | {rss:.1f} MB |" if rss else "| peak RSS | n/a |")
open(table, "w").write("\n".join(out) + "\n")
PY
cat "$table"

if [ -n "$update_readme" ]; then
    python3 - README.md "$table" <<'PY'
import sys
readme, table = sys.argv[1], open(sys.argv[2]).read()
text = open(readme).read()
start, end = "<!-- bench:start -->", "<!-- bench:end -->"
if start not in text or end not in text:
    # Add the markers at the end of the Benchmarks section.
    head, sep, rest = text.partition("\n## Benchmarks\n")
    if not sep:
        sys.exit("README.md has no '## Benchmarks' section")
    cut = rest.find("\n## ")
    cut = len(rest) if cut < 0 else cut
    rest = rest[:cut].rstrip("\n") + f"\n\n{start}\n{end}\n" + rest[cut:]
    text = head + sep + rest
before, _, after = text.partition(start)
_, _, after = after.partition(end)
open(readme, "w").write(f"{before}{start}\n{table}{end}{after}")
PY
    log "README.md updated"
fi
log "done in $(($(date +%s) - started)) s"
