#!/usr/bin/env bash
# The musl-static release build: dist/stepsecret-<target> and its .sha256.
#
# rustup cannot fetch the musl targets here, so this uses Debian's rustc-web with its std
# sources (-Z build-std) and musl-gcc as linker. Debian's libunwind.a was compiled against
# glibc with _FORTIFY_SOURCE, so a one-function shim provides __fprintf_chk for musl.
#
#   scripts/build-static.sh                                    x86_64-unknown-linux-musl
#   TARGET=aarch64-unknown-linux-musl scripts/build-static.sh  cross-built on x86_64
#
# aarch64 uses Debian's cross gcc with the arm64 musl's specs (musl-dev:arm64, so the arm64
# architecture is added to dpkg), and the arm64 libunwind.a extracted from its package
# (libunwind-14-dev:arm64 cannot be installed beside the amd64 one: they share a path).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${TARGET:-x86_64-unknown-linux-musl}
arch=${target%%-*}

packages=(rustc-web rust-web-src musl-tools libunwind-14-dev file)
if [ "$arch" = aarch64 ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }
  packages+=(gcc-aarch64-linux-gnu musl-dev:arm64)
fi
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

shim="$PWD/target/static-shim/$arch"
mkdir -p "$shim"
case $arch in
  x86_64)
    cc=musl-gcc
    cp /usr/lib/llvm-14/lib/libunwind.a "$shim/libunwind.a"
    ;;
  aarch64)
    cc="$shim/aarch64-musl-gcc"
    printf '#!/bin/sh\nexec aarch64-linux-gnu-gcc "$@" -specs /usr/lib/aarch64-linux-musl/musl-gcc.specs\n' >"$cc"
    chmod +x "$cc"
    if [ ! -f "$shim/libunwind.a" ]; then
      (cd "$shim" && rm -rf deb && mkdir deb && cd deb && apt-get download -qq libunwind-14-dev:arm64 >/dev/null \
        && dpkg-deb -x libunwind-14-dev_*_arm64.deb . && cp usr/lib/llvm-14/lib/libunwind.a "$shim/libunwind.a")
    fi
    ;;
  *) echo "build-static: no recipe for $target" >&2; exit 1 ;;
esac
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
"$cc" -O2 -c -o "$shim/fortify.o" "$shim/fortify.c"

export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
upper=$(printf '%s' "$target" | tr 'a-z-' 'A-Z_')
lower=$(printf '%s' "$target" | tr '-' '_')
ar="ar"
[ "$arch" = aarch64 ] && ar=aarch64-linux-gnu-ar
export "CC_${lower}=$cc" "AR_${lower}=$ar"
# Reproducible: no path of this checkout or of the cargo home ends up in the binary, so the same
# commit built anywhere gives the same bytes (scripts/check-reproducible.sh).
remap="--remap-path-prefix=$PWD=/build/stepsecret --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export "CARGO_TARGET_${upper}_RUSTFLAGS=-C linker=$cc -C link-self-contained=no -C target-feature=+crt-static -C relocation-model=static -L $shim -C link-arg=$shim/fortify.o $remap"
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
