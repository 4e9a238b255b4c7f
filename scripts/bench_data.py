#!/usr/bin/env python3
"""Generates benchmark inputs for scripts/bench-core.sh.

    bench_data.py secrets N OUT.env           N random secrets as dotenv (S0..S{N-1})
    bench_data.py log SECRETS.env MB EVERY OUT a log-like file of MB megabytes; when EVERY > 0,
                                              one line in EVERY carries a secret (raw, base64
                                              or percent-encoded)
    bench_data.py mixed-secrets N OUT.env     N secrets of mixed shapes: tokens, quoted
                                              passwords, PEM keys, JSON documents, hex
    bench_data.py mixed-log SECRETS.env MB OUT a CI-like log: ANSI-coloured lines, JSON lines,
                                              `+ cmd` xtrace lines, hex ids; one line in 200
                                              holds a value in some v2 form
"""
import base64
import html
import json
import random
import shlex
import sys
import urllib.parse

WORDS = ("INFO DEBUG WARN request completed in ms GET POST /api/v1/users /healthz 200 404 the of "
         "and worker started connection pool size=16 cache miss hit retry upstream latency=12ms "
         "2026-11-22T01:02:03Z trace_id=4bf92f3577b34da6 user_id=1842 job=build step=test").split()


def secrets(n, out):
    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_!@#%^&*"
    with open(out, "w") as f:
        for i in range(n):
            value = "".join(rng.choice(alphabet) for _ in range(32))
            f.write(f"S{i}='{value}'\n")


def load(path):
    values = []
    for line in open(path):
        line = line.strip()
        if line:
            values.append(line.split("=", 1)[1].strip("'"))
    return values


def log(secrets_path, megabytes, every, out):
    rng = random.Random(11)
    values = load(secrets_path)
    forms = [
        lambda v: v,
        lambda v: base64.b64encode(v.encode()).decode(),
        lambda v: urllib.parse.quote(v, safe=""),
    ]
    lines = []
    for i in range(20000):
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        if every and i % every == 0:
            line += " token=" + rng.choice(forms)(rng.choice(values))
        lines.append(line)
    block = ("\n".join(lines) + "\n").encode()
    target = megabytes * 1024 * 1024
    with open(out, "wb") as f:
        written = 0
        while written < target:
            f.write(block)
            written += len(block)


def dotenv_quote(value):
    """A double-quoted dotenv value (newlines as \\n)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def mixed_secrets(n, out):
    rng = random.Random(5)
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    with open(out, "w") as f:
        for i in range(n):
            shape = i % 5
            if shape == 0:
                value = "ghp_" + "".join(rng.choice(alnum) for _ in range(36))
            elif shape == 1:
                value = "".join(rng.choice(alnum + " '\"$&<>!") for _ in range(20))
            elif shape == 2:
                body = base64.b64encode(rng.randbytes(600)).decode()
                lines = [body[k:k + 64] for k in range(0, len(body), 64)]
                value = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
            elif shape == 3:
                value = json.dumps({"user": "svc-" + "".join(rng.choice(alnum) for _ in range(6)),
                                    "password": "".join(rng.choice(alnum + "/+=") for _ in range(24))})
            else:
                value = rng.randbytes(20).hex()
            f.write(f"S{i}={dotenv_quote(value)}\n")


def load_dotenv(path):
    values = []
    for line in open(path):
        if "=" in line:
            raw = line.rstrip("\n").split("=", 1)[1]
            values.append(json.loads(raw) if raw.startswith('"') else raw.strip("'"))
    return values


def mixed_log(secrets_path, megabytes, out):
    rng = random.Random(13)
    values = load_dotenv(secrets_path)
    forms = [
        lambda v: v.strip().split("\n")[min(1, v.strip().count("\n"))],
        lambda v: base64.b64encode(v.encode()).decode()[:300],
        lambda v: "+ curl -u " + shlex.quote(v.strip().split("\n")[0]),
        lambda v: "\x1b[32m" + v.strip().split("\n")[0][:20] + "\x1b[0m",
        lambda v: v.encode().hex()[:120],
        lambda v: json.dumps({"secret": v})[:300],
        lambda v: html.escape(v.strip().split("\n")[0]),
    ]
    colours = ["\x1b[32m", "\x1b[1;33m", "\x1b[31m", "\x1b[36m", "\x1b[0;90m"]
    lines = []
    for i in range(20000):
        kind = i % 4
        words = " ".join(rng.choice(WORDS) for _ in range(8))
        if kind == 0:
            line = f"{rng.choice(colours)}INFO\x1b[0m {words} \x1b[2m({rng.randint(1, 999)}ms)\x1b[0m"
        elif kind == 1:
            line = json.dumps({"level": "info", "msg": words, "trace": rng.randbytes(8).hex(), "n": i})
        elif kind == 2:
            line = f"+ ./deploy.sh --env prod --commit {rng.randbytes(20).hex()} --msg '{words}'"
        else:
            line = f"step {i} id={rng.randbytes(16).hex()} {words}"
        if i % 200 == 0:
            line += " " + rng.choice(forms)(rng.choice(values))
        lines.append(line)
    block = ("\n".join(lines) + "\n").encode()
    target = megabytes * 1024 * 1024
    with open(out, "wb") as f:
        written = 0
        while written < target:
            f.write(block)
            written += len(block)


if __name__ == "__main__":
    if sys.argv[1] == "secrets":
        secrets(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "mixed-secrets":
        mixed_secrets(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "mixed-log":
        mixed_log(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        log(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
