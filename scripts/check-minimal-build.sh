#!/usr/bin/env bash
# Builds stepsecret with no optional source and checks that a reference to a missing backend
# fails closed with the documented "not built in" error (exit 69) and never runs the command.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked --no-default-features --target-dir target/minimal
bin=target/minimal/debug/stepsecret
for ref in "age://secrets.age#k" "vault://secret/prod/db#password" "aws-sm://prod/db#password"; do
  scheme=${ref%%://*}
  marker=$(mktemp -u)
  set +e
  err=$("$bin" run -s "X=$ref" -- sh -c "touch $marker" 2>&1 >/dev/null)
  code=$?
  set -e
  [ "$code" = 69 ] || { echo "expected exit 69, got $code: $err"; exit 1; }
  case "$err" in
    *"$scheme:// references are not built in yet"*) ;;
    *) echo "unexpected message: $err"; exit 1 ;;
  esac
  [ ! -e "$marker" ] || { echo "the command ran"; exit 1; }
  echo "ok: $err"
done
