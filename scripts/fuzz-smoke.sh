#!/usr/bin/env bash
# A short fuzzing pass over the committed corpus: each cargo-fuzz target in fuzz/ (spec,
# reference, redact) for FUZZ_SECONDS (default 20) seconds, starting from fuzz/corpus/<target>/.
# Fails on the first crash, leaving the input under fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them. The
# smoke build is a dev build without a sanitizer (the fuzzed code is safe Rust, and debug
# assertions and overflow checks stay on), which builds in a fraction of the release+ASan time;
# the long runs use `cargo fuzz run <target>` with its defaults.
#
# Where cargo-fuzz cannot build or run at all (no libFuzzer toolchain support), it falls back to
# replaying the committed corpus through the same target functions as ordinary tests
# (fuzz/tests/corpus.rs), and says so.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
targets=(spec reference redact)
export RUSTC_BOOTSTRAP=1
# A separate target directory, so the smoke build never invalidates the release+ASan one.
build=(--dev --sanitizer none --target-dir target/smoke)

fallback() {
  echo "fuzz-smoke: $1; replaying the corpus as plain tests instead (cargo test in fuzz/)"
  cargo test --locked --test corpus -- --nocapture
  exit 0
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked || fallback "cargo-fuzz could not be installed"
fi

echo "fuzz-smoke: building ${targets[*]} ($(cargo fuzz --version))"
build_log=$(mktemp)
# The spec target writes a copy of each spec under TMPDIR (Plan::build reads a file).
scratch_tmp=$(mktemp -d)
trap 'rm -rf "$build_log" "$scratch_tmp"' EXIT
export TMPDIR=$scratch_tmp
if ! cargo fuzz build "${build[@]}" >"$build_log" 2>&1; then
  if grep -q "^error\[E[0-9]*\]\|could not compile" "$build_log"; then
    # A compile error in the code is a real failure, not a missing toolchain feature.
    cat "$build_log"
    exit 1
  fi
  tail -20 "$build_log"
  fallback "cargo fuzz build failed"
fi

for target in "${targets[@]}"; do
  corpus=$PWD/corpus/$target
  echo "fuzz-smoke: $target for ${seconds}s over $corpus ($(find "$corpus" -type f | wc -l) inputs)"
  # The corpus is not written to: new inputs go to a scratch directory listed first.
  scratch=$(mktemp -d)
  status=0
  cargo fuzz run "${build[@]}" "$target" "$scratch" "$corpus" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$build_log" 2>&1 || status=$?
  rm -rf "$scratch"
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$build_log" | sed 's/^/  /' || true
  if [ "$status" != 0 ]; then
    cat "$build_log"
    echo "fuzz-smoke: $target FAILED (exit $status); the input is under fuzz/artifacts/$target/"
    exit 1
  fi
done
echo "fuzz-smoke: all targets ran without a crash"
