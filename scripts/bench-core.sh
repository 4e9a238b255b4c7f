#!/usr/bin/env bash
# Core benchmarks (issue 2): redactor throughput against `cat`, the overhead of
# `stepsecret run -- true` with 10 age secrets, and peak RSS. Prints figures; exits 0.
#
#   scripts/bench-core.sh            (needs hyperfine: installed with apt when missing)
#   MB=512 scripts/bench-core.sh     (size of the throughput input, default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }

cargo build --release --quiet
bin="$PWD/target/release/stepsecret"
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
masked=$("$bin" redact --spec "$work/100.toml" <"$work/dirty.log" | grep -c 'masked:' || true)
echo "   lines masked in the dirty input: $masked"

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
PY
echo "== binary: $(stat -c %s "$bin") bytes ($bin)"
