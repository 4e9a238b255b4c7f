#!/usr/bin/env bash
# What the core tests need beyond cargo: a POSIX shell and coreutils/diffutils (stat, base64,
# cmp), and the real tools tests/redact_real_tools.rs runs (bash, dash, busybox sh, xxd,
# openssl, iconv, grep, base32/basenc); installed with apt when missing, on a fresh Debian.
set -euo pipefail
missing=()
for tool in sh bash dash busybox stat base64 base32 basenc cmp xxd openssl iconv grep tr; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing for: ${missing[*]}"
  apt-get update -qq
  # xxd has its own package since Debian 12 (vim-common before); iconv is in libc-bin.
  apt-get install -y -qq bash dash busybox-static coreutils diffutils grep openssl libc-bin >/dev/null
  apt-get install -y -qq xxd >/dev/null 2>&1 || apt-get install -y -qq vim-common >/dev/null
fi
echo "core test tools present"
