#!/usr/bin/env bash
# What the core tests need beyond cargo: a POSIX shell and coreutils/diffutils (stat, base64,
# cmp), present on any Debian; installed when missing.
set -euo pipefail
missing=()
for tool in sh stat base64 cmp; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq coreutils diffutils dash >/dev/null
fi
echo "core test tools present"
