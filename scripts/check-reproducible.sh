#!/usr/bin/env bash
# Proves the static release build is reproducible: the committed HEAD is cloned into two
# different directories and built there, one build after the other (so at two different
# times), each from scratch with its own target directory, by scripts/build-static.sh. The two
# binaries must be byte-identical. Prints both sha256 digests, each build's start time and the
# wall time.
#
#   scripts/check-reproducible.sh                              x86_64-unknown-linux-musl
#   TARGET=aarch64-unknown-linux-musl scripts/check-reproducible.sh
#
# Costs two full static builds (about 10 minutes each on 2 cores): not part of scripts/test.sh.
# To check a release, run it on the tag and compare the digest with the release's SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${TARGET:-x86_64-unknown-linux-musl}
repo=$PWD
commit=$(git rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/stepsecret-repro.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

build() { # DIR: clone HEAD into DIR and build it there
    local dir=$1
    git clone --quiet --no-checkout "$repo" "$dir"
    git -C "$dir" checkout --quiet "$commit"
    printf 'build in %s, started %s\n' "$dir" "$(date -u +%FT%TZ)" >&2
    (cd "$dir" && TARGET=$target scripts/build-static.sh >"$dir.log" 2>&1) \
        || { tail -20 "$dir.log"; echo "check-reproducible: the build in $dir failed" >&2; exit 1; }
    sha256sum "$dir/dist/stepsecret-$target" | cut -d' ' -f1
}

first=$(build "$work/first/stepsecret")
echo "first:  $first"
second=$(build "$work/second-copy/src/stepsecret")
echo "second: $second"
echo "commit $commit, $target, wall time $(( $(date +%s) - started ))s"
if [ "$first" != "$second" ]; then
    echo "check-reproducible: the two builds differ" >&2
    cmp "$work/first/stepsecret/dist/stepsecret-$target" "$work/second-copy/src/stepsecret/dist/stepsecret-$target" | head -1 >&2 || true
    exit 1
fi
echo "reproducible: both builds are byte-identical"
