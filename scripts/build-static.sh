#!/usr/bin/env bash
# The musl-static release build: dist/stepsecret-<target> and its .sha256.
#
# rustup cannot fetch the musl target here, so this uses Debian's rustc-web with its std
# sources (-Z build-std) and musl-gcc as linker. Debian's libunwind.a was compiled against
# glibc with _FORTIFY_SOURCE, so a one-function shim provides __fprintf_chk for musl.
#
#   scripts/build-static.sh            x86_64-unknown-linux-musl
set -euo pipefail
cd "$(dirname "$0")/.."
target=${TARGET:-x86_64-unknown-linux-musl}

packages=(rustc-web rust-web-src musl-tools libunwind-14-dev file)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

shim="$PWD/target/static-shim"
mkdir -p "$shim"
cat >"$shim/fortify.c" <<'C'
#include <stdarg.h>
#include <stdio.h>
/* libunwind.a from Debian calls glibc's fortified fprintf; musl only has the plain one. */
int __fprintf_chk(FILE *stream, int flag, const char *format, ...) {
    (void)flag;
    va_list ap;
    va_start(ap, format);
    int n = vfprintf(stream, format, ap);
    va_end(ap);
    return n;
}
C
musl-gcc -O2 -c -o "$shim/fortify.o" "$shim/fortify.c"
cp /usr/lib/llvm-14/lib/libunwind.a "$shim/libunwind.a"

export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CC_x86_64_unknown_linux_musl=musl-gcc
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C linker=musl-gcc -C link-self-contained=no -C target-feature=+crt-static -C relocation-model=static -L $shim -C link-arg=$shim/fortify.o"
cargo build --release --locked -Z build-std=std,panic_abort --target "$target" --target-dir target/static

mkdir -p dist
out="dist/stepsecret-$target"
cp "target/static/$target/release/stepsecret" "$out"
(cd dist && sha256sum "stepsecret-$target" >"stepsecret-$target.sha256")
file "$out"
if ! file "$out" | grep -q "statically linked"; then
  echo "error: $out is not statically linked" >&2
  exit 1
fi
size=$(stat -c %s "$out")
echo "$out: $size bytes; sha256 $(cut -d' ' -f1 "dist/stepsecret-$target.sha256")"
[ "$size" -le $((10 * 1024 * 1024)) ] || { echo "error: larger than 10 MB" >&2; exit 1; }
