#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (apt, pip, cargo
# components), then formatting, lints and every test. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# Each backend's test dependencies (servers, validators) install themselves, idempotently.
for deps in scripts/deps/*.sh; do
  step "dependencies: $deps"
  bash "$deps"
done

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "no module cycles in src/ (scripts/dev/module-cycles.py)"
python3 scripts/dev/module-cycles.py

step "cargo test"
cargo test --locked

step "the CircleCI orb and the CI configurations (scripts/test-orb.sh)"
scripts/test-orb.sh

step "a binary without the optional sources says so instead of failing oddly"
scripts/check-minimal-build.sh

step "the musl-static release binary (scripts/build-static.sh)"
scripts/build-static.sh

step "cargo test against the static binary (STEPSECRET_TEST_BIN)"
STEPSECRET_TEST_BIN="$PWD/dist/stepsecret-x86_64-unknown-linux-musl" cargo test --locked --tests

step "the aarch64 static binary, cross-built and run under qemu-user (scripts/test-aarch64.sh)"
scripts/test-aarch64.sh

step "the Bitbucket pipe: files, and the image under podman (scripts/test-pipe.sh)"
scripts/test-pipe.sh

step "the release as both tag pipelines run it, on a clean clone (scripts/test-release.sh)"
scripts/test-release.sh

step "the CircleCI test-deploy integration job, executed here (scripts/test-deploy-local.sh)"
scripts/test-deploy-local.sh

step "a short fuzzing pass over the committed corpus (scripts/fuzz-smoke.sh)"
scripts/fuzz-smoke.sh

step "all tests passed"
