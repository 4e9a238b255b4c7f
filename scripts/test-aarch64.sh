#!/usr/bin/env bash
# The aarch64 musl-static build, cross-built here and run under qemu-user (Debian's
# qemu-user-static): version, the demo run (masked output, a file secret), exit codes, a fail-
# closed error. No binfmt_misc here, so the binary is started through qemu-aarch64-static and
# cannot re-exec itself for the guardian (a warning says so; on arm64 hardware it can).
# Ends with "N passed, M failed".
# The command for sh -c is single-quoted on purpose.
# shellcheck disable=SC2016
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/lib/check.sh
. scripts/lib/check.sh

command -v qemu-aarch64-static >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
}
bin=dist/stepsecret-aarch64-unknown-linux-musl
TARGET=aarch64-unknown-linux-musl scripts/build-static.sh || { echo "aarch64 build failed"; echo "0 passed, 1 failed"; exit 1; }
qemu=(qemu-aarch64-static "$bin")

check "file says ARM aarch64, statically linked" sh -c "file '$bin' | grep -q 'ARM aarch64.*statically linked'"
check "--version under qemu-user" sh -c "'${qemu[0]}' '$bin' --version | grep -q '^stepsecret '"
export STEPSECRET_AGE_IDENTITY_FILE=examples/demo/demo-identity.txt
out=$("${qemu[@]}" run --spec examples/demo/stepsecret.toml -- sh -c 'echo "token=$DEMO_TOKEN"; test -s "$DEMO_KEY" && exit 7' 2>/dev/null)
code=$?
check "the demo: masked output, the file secret, the command's exit code (7)" \
    test "$out" = "token=[masked:DEMO_TOKEN]" -a "$code" = 7
"${qemu[@]}" run -s 'X=age://examples/demo/secrets.env.age#NOPE' -- touch /tmp/test-aarch64-ran 2>/tmp/test-aarch64-err
code=$?
check "a missing key fails closed (69) and the command never runs" \
    sh -c "test $code = 69 && test ! -e /tmp/test-aarch64-ran && grep -q 'X (age://' /tmp/test-aarch64-err"
check "check --format json" sh -c "'${qemu[0]}' '$bin' check --spec examples/demo/stepsecret.toml --format json | grep -q '\"ok\": true'"
check_summary
