#!/usr/bin/env bash
# What the BatchGetSecretValue fallback costs: `stepsecret run -- true` with 50 secrets from a
# local moto, straight (3 BatchGetSecretValue calls) and through a loopback proxy that denies
# BatchGetSecretValue with AccessDeniedException as AWS does for a role without it (moto
# enforces no IAM, so the proxy is a fake, and says so), which makes stepsecret fall back to
# 50 concurrent GetSecretValue calls. Same run, hyperfine medians; prints figures.
#
#   scripts/bench-aws-fallback.sh               RUNS=30 scripts/bench-aws-fallback.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
N=50
log() { printf 'bench-aws-fallback: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/peers.sh
. scripts/lib/peers.sh
# shellcheck source=scripts/lib/moto.sh
. scripts/lib/moto.sh
peers_hyperfine
moto=$(scripts/deps/aws.sh)
[ -x "${BIN:-}" ] || { log "cargo build --release"; cargo build --release --quiet; }
bin=${BIN:-$PWD/target/release/stepsecret}

work=$(mktemp -d)
proxy_pid=""
# shellcheck disable=SC2086 # two pids
trap '[ -z "$proxy_pid" ] || kill $proxy_pid 2>/dev/null; moto_stop; rm -rf "$work"' EXIT
moto_start "$moto" "$work" || exit 1

auth="AWS4-HMAC-SHA256 Credential=AKIDBENCH/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
for i in $(seq -w 0 $((N - 1))); do
    curl -s -f -o /dev/null "$MOTO_URL/" -H "X-Amz-Target: secretsmanager.CreateSecret" \
        -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Date: 20240101T000000Z' \
        -H "Authorization: $auth" \
        --data-binary "{\"Name\":\"bench/s$i\",\"SecretString\":\"pw-$i-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')\"}"
done
{
    echo "[env]"
    for i in $(seq -w 0 $((N - 1))); do echo "P$i = \"aws-sm://bench/s$i\""; done
} >"$work/spec.toml"

# The fake: forwards to moto, and with `deny` answers BatchGetSecretValue itself.
cat >"$work/proxy.py" <<'PY'
import http.server, socketserver, sys, urllib.request, urllib.error
port, upstream, deny = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "deny"
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if deny and self.headers.get("X-Amz-Target", "").endswith(".BatchGetSecretValue"):
            out = b'{"__type":"AccessDeniedException","message":"denied by the benchmark proxy"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
        else:
            req = urllib.request.Request(upstream + self.path, data=body, method="POST",
                                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
            try:
                with urllib.request.urlopen(req) as r:
                    status, out, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
            except urllib.error.HTTPError as e:
                status, out, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
            self.send_response(status)
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
Server(("127.0.0.1", port), Handler).serve_forever()
PY
ports=$(free_port 2)
allow_port=$ports deny_port=$((ports + 1))
python3 "$work/proxy.py" "$allow_port" "$MOTO_URL" forward >"$work/allow.log" 2>&1 &
proxy_pid=$!
python3 "$work/proxy.py" "$deny_port" "$MOTO_URL" deny >"$work/deny.log" 2>&1 &
proxy_pid="$proxy_pid $!"
for port in "$allow_port" "$deny_port"; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" -X POST && break; sleep 0.05; done
done

common=(env AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
    AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent)
straight="${common[*]} AWS_ENDPOINT_URL=http://127.0.0.1:$allow_port $bin run --spec $work/spec.toml -- true"
denied="${common[*]} AWS_ENDPOINT_URL=http://127.0.0.1:$deny_port $bin run --spec $work/spec.toml -- true"
# Sanity: both runs set every variable, and the denied one warns once.
for cmd in "$straight" "$denied"; do
    count=$(eval "${cmd% -- true} -- sh -c 'env | grep -c ^P[0-9]*=pw-'" 2>"$work/err")
    [ "$count" = "$N" ] || { log "a run set $count of $N variables: $(cat "$work/err")"; exit 1; }
done
grep -q 'BatchGetSecretValue was denied' "$work/err" || { log "the denied run did not warn"; exit 1; }

echo "== $N secrets from local moto, median of $RUNS runs (hyperfine), load average $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/h.json" "$straight" "$denied" >/dev/null 2>&1
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
a, b = (x["median"] * 1000 for x in r)
print(f"  BatchGetSecretValue allowed (3 batch calls)            {a:7.1f} ms")
print(f"  BatchGetSecretValue denied (fallback: 50 GetSecretValue) {b:7.1f} ms  ({b / a:.2f}x)")
PY
