#!/usr/bin/env python3
"""Generates benchmark inputs for scripts/bench-core.sh.

    bench_data.py secrets N OUT.env           N random secrets as dotenv (S0..S{N-1})
    bench_data.py log SECRETS.env MB EVERY OUT a log-like file of MB megabytes; when EVERY > 0,
                                              one line in EVERY carries a secret (raw, base64
                                              or percent-encoded)
"""
import base64
import random
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


if __name__ == "__main__":
    if sys.argv[1] == "secrets":
        secrets(int(sys.argv[2]), sys.argv[3])
    else:
        log(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
