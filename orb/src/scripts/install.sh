#!/bin/sh
# stepsecret/install: download the static binary for this machine, verify its sha256 BEFORE it
# is made executable, and install it. POSIX sh (cimg images, Alpine/busybox), curl or wget.
#
# Parameters (environment), each through `circleci env subst` first when the CLI exists:
#   PARAM_VERSION            release to install, e.g. 0.1.0 (a leading v is accepted)
#   PARAM_SHA256             the expected sha256 of this machine's binary of that version
#   PARAM_INSTALL_DIR        target directory (a leading ~ means $HOME); default /usr/local/bin
#   PARAM_DOWNLOAD_BASE_URL  where stepsecret-<arch>-unknown-linux-musl{,.sha256} are found;
#                            else $STEPSECRET_DOWNLOAD_BASE_URL; else the GitHub release.
#
# Which digest is trusted: PARAM_SHA256 when given; else, for the orb's own default version,
# the digests the release wrote in below (a compromised download host cannot change them);
# else, with a warning, the .sha256 served beside the binary.
set -eu

fail() {
    printf 'stepsecret/install: error: %s\n' "$*" >&2
    exit 1
}
say() { printf 'stepsecret/install: %s\n' "$*"; }

# Written in by scripts/release.sh when it packs the orb: this orb release's binaries.
pinned_version=""
# shellcheck disable=SC2034 # read through eval, by architecture
pinned_sha256_x86_64=""
# shellcheck disable=SC2034
pinned_sha256_aarch64=""

if command -v circleci >/dev/null 2>&1 && circleci env subst probe >/dev/null 2>&1; then
    subst() { circleci env subst "$1"; }
else
    # shellcheck disable=SC2016 # a literal $VARIABLES
    say 'note: no circleci CLI here: parameters are used as written, without expanding $VARIABLES'
    subst() { printf '%s' "$1"; }
fi
for name in VERSION SHA256 INSTALL_DIR DOWNLOAD_BASE_URL; do
    eval "value=\${PARAM_$name:-}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ -n "$value" ]; then
        value=$(subst "$value") || fail "circleci env subst failed on the $name parameter"
        eval "PARAM_$name=\$value"
    fi
done

version=${PARAM_VERSION:-}
version=${version#v}
[ -n "$version" ] || fail "the version parameter is empty"
case $version in
    *[!0-9A-Za-z.+-]*) fail "invalid version: $version" ;;
esac

install_dir=${PARAM_INSTALL_DIR:-/usr/local/bin}
# shellcheck disable=SC2088 # a literal "~" from the parameter, expanded here
case $install_dir in
    "~") install_dir=$HOME ;;
    "~/"*) install_dir=$HOME/${install_dir#"~/"} ;;
esac
target=$install_dir/stepsecret

# Already there: nothing to download.
if [ -x "$target" ]; then
    current=$("$target" --version 2>/dev/null || true)
    if [ "$current" = "stepsecret $version" ]; then
        say "stepsecret $version is already installed at $target; skipping the download"
        exit 0
    fi
fi

system=$(uname -s)
case $system in
    Linux) ;;
    Darwin) fail "macOS executors are not supported: stepsecret ships static Linux binaries (x86_64, aarch64) for docker, machine and arm executors" ;;
    MINGW* | MSYS* | CYGWIN* | Windows*) fail "Windows executors are not supported: stepsecret ships static Linux binaries (x86_64, aarch64) for docker, machine and arm executors" ;;
    *) fail "stepsecret ships Linux binaries only (this is $system)" ;;
esac
machine=$(uname -m)
case $machine in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "no stepsecret binary for the architecture $machine (x86_64 and aarch64 only)" ;;
esac
asset=stepsecret-$arch-unknown-linux-musl

# The digest to trust, if any is known before downloading.
pinned=""
if [ -n "${PARAM_SHA256:-}" ]; then
    pinned=$(printf '%s' "$PARAM_SHA256" | tr 'A-F' 'a-f')
    case $pinned in
        *[!0-9a-f]*) fail "the sha256 parameter is not a sha256 digest (64 hex digits)" ;;
    esac
    [ ${#pinned} -eq 64 ] || fail "the sha256 parameter is not a sha256 digest (64 hex digits)"
    pin_source="the sha256 parameter"
elif [ -n "$pinned_version" ] && [ "$version" = "$pinned_version" ]; then
    eval "pinned=\$pinned_sha256_$arch"
    pin_source="the digest this orb carries for stepsecret $version"
fi

base_url=${PARAM_DOWNLOAD_BASE_URL:-${STEPSECRET_DOWNLOAD_BASE_URL:-https://github.com/stepsecret/stepsecret/releases/download/v$version}}
base_url=${base_url%/}

if command -v curl >/dev/null 2>&1; then
    fetch() { curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1 && wget --version 2>/dev/null | grep -q 'GNU Wget'; then
    fetch() { wget -q -T 30 -t 3 -O "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
    # busybox wget (Alpine); its -T crashes some builds (Debian's busybox 1.35 static).
    fetch() { wget -q -O "$2" "$1"; }
else
    fail "neither curl nor wget is installed"
fi

if command -v sha256sum >/dev/null 2>&1; then
    sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
    sha256_of() { shasum -a 256 "$1" | cut -d' ' -f1; }
elif command -v openssl >/dev/null 2>&1; then
    sha256_of() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
else
    fail "no sha256 tool (sha256sum, shasum or openssl) is installed"
fi

# Downloads land in a private directory, never executable, removed on every exit.
umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stepsecret-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "downloading $asset $version from $base_url"
fetch "$base_url/$asset" "$tmp/$asset" || fail "could not download $base_url/$asset"
actual=$(sha256_of "$tmp/$asset")
if [ -n "$pinned" ]; then
    # The served .sha256 is not asked: it lives on the same host as the binary.
    if [ "$actual" != "$pinned" ]; then
        fail "checksum mismatch for $asset: $pin_source is $pinned, the download is $actual; refusing to install it"
    fi
    say "sha256 verified against $pin_source: $actual"
else
    say "warning: no pinned digest for stepsecret $version on $arch: trusting the .sha256 served beside the binary; pass the sha256 parameter to pin it"
    fetch "$base_url/$asset.sha256" "$tmp/$asset.sha256" || fail "could not download $base_url/$asset.sha256"

    # sha256sum format: "<64 hex>  <file name>"; the name, when present, must be the asset's.
    expected=$(head -n 1 "$tmp/$asset.sha256" | tr -d '\r' | tr 'A-F' 'a-f')
    named=$(printf '%s\n' "$expected" | cut -s -d' ' -f2- | sed 's/^[ *]*//')
    expected=$(printf '%s\n' "$expected" | cut -d' ' -f1)
    case $expected in
        *[!0-9a-f]* | "") fail "$asset.sha256 holds no sha256 checksum" ;;
    esac
    [ ${#expected} -eq 64 ] || fail "$asset.sha256 holds no sha256 checksum"
    if [ -n "$named" ] && [ "$named" != "$asset" ]; then
        fail "$asset.sha256 is the checksum of $named, not of $asset"
    fi
    if [ "$actual" != "$expected" ]; then
        fail "checksum mismatch for $asset: expected $expected, got $actual; refusing to install it"
    fi
    say "sha256 verified: $actual"
fi

# Only now does it become executable: staged next to the target, then renamed into place.
as_needed=""
if ! mkdir -p "$install_dir" 2>/dev/null || [ ! -w "$install_dir" ]; then
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
        as_needed=sudo
        sudo mkdir -p "$install_dir"
    else
        fail "cannot write to $install_dir"
    fi
fi
staged=$install_dir/.stepsecret.$$.tmp
$as_needed cp "$tmp/$asset" "$staged" || fail "could not write $staged"
if ! $as_needed chmod 0755 "$staged"; then
    $as_needed rm -f "$staged"
    fail "could not make $staged executable"
fi
# It must run here and be the version asked for, else the old binary (if any) stays.
installed=$("$staged" --version 2>&1) || installed="(it does not run: $installed)"
if [ "$installed" != "stepsecret $version" ]; then
    $as_needed rm -f "$staged"
    fail "the downloaded binary says $installed, not stepsecret $version; not installed"
fi
if ! $as_needed mv -f "$staged" "$target"; then
    $as_needed rm -f "$staged"
    fail "could not install $target"
fi
say "installed $installed at $target"
case :$PATH: in
    *:"$install_dir":*) ;;
    *) say "note: $install_dir is not on PATH; pass install_dir to stepsecret/run too" ;;
esac
