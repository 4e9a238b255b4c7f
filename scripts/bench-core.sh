#!/usr/bin/env bash
# Core benchmarks (issues 2 and 11): redactor throughput against `cat` and the v1 redactor
# (before masking v2, built once from git history into target/bench-v1) on the old log and on a
# mixed CI-like log (ANSI colour, JSON, xtrace, hex ids; 100 secrets of mixed shapes), the
# redactor's forms per secret, states and memory, prompt latency (p50/p99), the overhead of
# `stepsecret run -- true` with 10 age secrets, peak RSS, and the scale curve for 10, 100,
# 1000 and 3000 secrets (peak RSS and time to the command's first output). Prints figures;
# exits 0.
#
#   scripts/bench-core.sh            (needs hyperfine: installed with apt when missing)
#   MB=512 scripts/bench-core.sh     (size of the throughput input, default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }

cargo build --release --quiet
bin="$PWD/target/release/stepsecret"

# The v1 redactor: the last commit before masking v2 (0d2294b, the first v2 forms, is its
# child), built once, age source only (all the redact benchmark needs; no AWS SDK to build).
v1_commit=e95d986383951fbdd4d8026612ddfb70fced973e
v1="$PWD/target/bench-v1/target/release/stepsecret"
if [ "$(cat target/bench-v1/commit 2>/dev/null)" != "$v1_commit" ] || [ ! -x "$v1" ]; then
  rm -rf target/bench-v1/src && mkdir -p target/bench-v1/src
  if git archive "$v1_commit" | tar -x -C target/bench-v1/src \
    && CARGO_TARGET_DIR="$PWD/target/bench-v1/target" cargo build --release --quiet \
      --manifest-path target/bench-v1/src/Cargo.toml --no-default-features --features age-source; then
    echo "$v1_commit" >target/bench-v1/commit
  else
    echo "== v1 redactor: cannot build ${v1_commit:0:7}; no v1 figures" >&2
    v1=""
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
MB=${MB:-256}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
"$bin" keygen -o "$work/id.txt" >"$work/recipient" 2>/dev/null
export STEPSECRET_AGE_IDENTITY_FILE="$work/id.txt"

# --- Redactor throughput: 100 secrets, every derived form -------------------------------------
python3 scripts/bench_data.py secrets 100 "$work/100.env"
"$bin" seal -r "$(cat "$work/recipient")" -o "$work/100.env.age" "$work/100.env" 2>/dev/null
{ echo "[expand]"; echo "\"\" = \"age://100.env.age\""; } >"$work/100.toml"
python3 scripts/bench_data.py log "$work/100.env" "$MB" 0 "$work/clean.log"
python3 scripts/bench_data.py log "$work/100.env" "$MB" 100 "$work/dirty.log"
size=$(stat -c %s "$work/clean.log")
# The logs were just written: flush them now, or their writeback lands in the first timings.
sync

rate() { # name, command: median GB/s over hyperfine runs
  local json="$work/h.json"
  hyperfine --warmup 1 --runs 5 --export-json "$json" -N "$2" >/dev/null 2>&1 \
    || hyperfine --warmup 1 --runs 5 --export-json "$json" "$2" >/dev/null
  python3 - "$json" "$size" "$1" <<'PY'
import json, sys
median = json.load(open(sys.argv[1]))["results"][0]["median"]
print(f"{sys.argv[3]:<46} {int(sys.argv[2]) / median / 1e9:6.2f} GB/s  ({median * 1000:.0f} ms)")
PY
}
echo "== redactor throughput, $((size / 1024 / 1024)) MiB through a pipe (median of 5)"
rate "cat | cat (ceiling)" "sh -c 'cat $work/clean.log | cat > /dev/null'"
rate "cat | stepsecret redact, no secret in output" "sh -c 'cat $work/clean.log | $bin redact --spec $work/100.toml > /dev/null'"
rate "cat | stepsecret redact, 1 line in 100 has one" "sh -c 'cat $work/dirty.log | $bin redact --spec $work/100.toml > /dev/null'"
if [ -n "$v1" ]; then
  rate "cat | stepsecret v1 redact, 1 line in 100" "sh -c 'cat $work/dirty.log | $v1 redact --spec $work/100.toml > /dev/null'"
fi
masked=$("$bin" redact --spec "$work/100.toml" <"$work/dirty.log" | grep -c 'masked:' || true)
echo "   lines masked in the dirty input: $masked"

# --- v2: 100 secrets of mixed shapes, a CI-like mixed log ---------------------------------------
python3 scripts/bench_data.py mixed-secrets 100 "$work/mixed.env"
"$bin" seal -r "$(cat "$work/recipient")" -o "$work/mixed.env.age" "$work/mixed.env" 2>/dev/null
{ echo "[expand]"; echo "\"\" = \"age://mixed.env.age\""; } >"$work/mixed.toml"
python3 scripts/bench_data.py mixed-log "$work/mixed.env" "$MB" "$work/mixed.log"
sync
echo "== the redactor's automaton (target/release/examples/redact_stats)"
cargo build --release --quiet --example redact_stats
stats=target/release/examples/redact_stats
echo "   old secrets:   $("$stats" "$work/100.env")"
echo "   mixed secrets: $("$stats" "$work/mixed.env")"
size=$(stat -c %s "$work/mixed.log")
echo "== mixed log, $((size / 1024 / 1024)) MiB through a pipe (median of 5)"
rate "cat | cat (ceiling), mixed log" "sh -c 'cat $work/mixed.log | cat > /dev/null'"
rate "cat | stepsecret redact, mixed log" "sh -c 'cat $work/mixed.log | $bin redact --spec $work/mixed.toml > /dev/null'"
masked=$("$bin" redact --spec "$work/mixed.toml" <"$work/mixed.log" | head -c 20000000 | grep -c 'masked:' || true)
echo "   lines masked in the first 20 MB of the mixed log: $masked"

echo "== prompt latency: 'Ready N on :8080' without newline, 100 mixed secrets, prompts 2-40"
python3 - "$bin" "$work" <<'PY'
import os, subprocess, sys, time
bin, work = sys.argv[1], sys.argv[2]
stamps = f"{work}/stamps"
open(stamps, "w").close()
child = ("import sys, time\n"
         "for i in range(40):\n"
         "    open(sys.argv[1], 'a').write(f'{i} {time.time_ns()}\\n')\n"
         "    sys.stdout.write(f'Ready {i} on :8080'); sys.stdout.flush()\n"
         "    time.sleep(0.12)\n")
p = subprocess.Popen([bin, "run", "--spec", f"{work}/mixed.toml", "--", "python3", "-c", child, stamps],
                     stdout=subprocess.PIPE, cwd=work)
seen, buf = {}, b""
while True:
    chunk = os.read(p.stdout.fileno(), 4096)
    if not chunk:
        break
    buf += chunk
    if buf.endswith(b":8080"):
        # Which prompt just completed: the number in its last "Ready N on :8080".
        n = int(buf[buf.rindex(b"Ready ") + 6:].split()[0])
        seen.setdefault(n, time.time_ns())
p.wait()
sent = dict(map(int, line.split()) for line in open(stamps))
# The first prompt also waits for the automaton to be built: left out.
lat = sorted((seen[n] - sent[n]) / 1e6 for n in seen if n > 0)
if len(seen) != len(sent):
    print(f"   only {len(seen)} of {len(sent)} prompts arrived whole")
if lat:
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"   p50 {lat[len(lat) // 2]:.1f} ms   p99 {p99:.1f} ms   max {lat[-1]:.1f} ms")
PY

# --- run -- true with 10 age secrets -----------------------------------------------------------
python3 scripts/bench_data.py secrets 10 "$work/10.env"
"$bin" seal -r "$(cat "$work/recipient")" -o "$work/10.env.age" "$work/10.env" 2>/dev/null
{ echo "[expand]"; echo "\"\" = \"age://10.env.age\""; } >"$work/10.toml"
echo "== stepsecret run -- true, 10 age secrets (hyperfine, -N)"
hyperfine -N --warmup 20 --runs 300 --export-json "$work/run.json" \
  "true" "$bin run --spec $work/10.toml -- true" >/dev/null
python3 - "$work/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base, ours = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"true                       median {base:6.2f} ms")
print(f"stepsecret run -- true     median {ours:6.2f} ms   overhead {ours - base:5.2f} ms")
PY

echo "== peak RSS (getrusage of the child)"
python3 - "$bin" "$work" <<'PY'
import resource, subprocess, sys
bin, work = sys.argv[1], sys.argv[2]
def peak(args, stdin=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(args, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"run -- true, 10 secrets        {peak([bin, 'run', '--spec', f'{work}/10.toml', '--', 'true']):6.1f} MB")
with open(f"{work}/dirty.log", "rb") as f:
    print(f"redact, 100 secrets, dirty log {peak([bin, 'redact', '--spec', f'{work}/100.toml'], stdin=f):6.1f} MB")
# getrusage of the children is a running maximum: this one is measured on its own.
r = subprocess.run(["/usr/bin/time", "-f", "%M", bin, "run", "--spec", f"{work}/mixed.toml", "--", "echo", "ready"],
                   capture_output=True, text=True)
print(f"run -- echo, 100 mixed secrets {int(r.stderr.split()[-1]) / 1024:6.1f} MB  (target <= 20 MB)")
PY

echo "== scale: N age secrets (32-byte tokens), every v2 form; run -- echo ready (median of 3)"
for n in 10 100 1000 3000; do
  python3 scripts/bench_data.py secrets "$n" "$work/s$n.env"
  "$bin" seal -r "$(cat "$work/recipient")" -o "$work/s$n.env.age" "$work/s$n.env" 2>/dev/null
  { echo "[expand]"; echo "\"\" = \"age://s$n.env.age\""; } >"$work/s$n.toml"
  echo "   $("$stats" "$work/s$n.env")"
done
python3 - "$bin" "$work" <<'PY'
import subprocess, sys, time
bin, work = sys.argv[1], sys.argv[2]
print(f"   {'secrets':>7}  {'peak RSS':>9}  {'to first output':>15}  {'run -- true':>11}")
for n in (10, 100, 1000, 3000):
    first, whole = [], []
    for _ in range(3):
        before = time.perf_counter()
        p = subprocess.Popen([bin, "run", "--spec", f"{work}/s{n}.toml", "--", "echo", "ready"],
                             stdout=subprocess.PIPE, cwd=work)
        p.stdout.read(1)
        first.append((time.perf_counter() - before) * 1e3)
        p.communicate()
        before = time.perf_counter()
        subprocess.run([bin, "run", "--spec", f"{work}/s{n}.toml", "--", "true"], check=True, cwd=work)
        whole.append((time.perf_counter() - before) * 1e3)
    # Peak RSS of one more run on its own.
    r = subprocess.run(["/usr/bin/time", "-f", "%M", bin, "run", "--spec", f"{work}/s{n}.toml", "--", "echo", "ready"],
                       capture_output=True, text=True, cwd=work)
    kb = int(r.stderr.strip().splitlines()[-1])
    print(f"   {n:>7}  {kb / 1024:6.1f} MB  {sorted(first)[1]:12.0f} ms  {sorted(whole)[1]:8.0f} ms")
PY
echo "== binary: $(stat -c %s "$bin") bytes ($bin)"
