#!/usr/bin/env bash
# The CircleCI release job (tags v* only, context "release"): publishes the GitHub release with
# the static binaries and their .sha256 files from dist/, then the packed orb dist/orb.yml as
# stepsecret/stepsecret@<version>. The context provides GITHUB_TOKEN (contents: write on the
# repository) and CIRCLE_TOKEN (a token allowed to publish in the stepsecret orb namespace).
set -euo pipefail

fail() { printf 'release: error: %s\n' "$*" >&2; exit 1; }

tag=${CIRCLE_TAG:?release runs on a tag}
version=${tag#v}
: "${GITHUB_TOKEN:?the release context must provide GITHUB_TOKEN}"
: "${CIRCLE_TOKEN:?the release context must provide CIRCLE_TOKEN}"
repo=${RELEASE_REPOSITORY:-stepsecret/stepsecret}

cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "$cargo_version" = "$version" ] || fail "tag $tag but Cargo.toml says $cargo_version"
grep -q "default: \"\\?$version\"\\?\$" dist/orb.yml || fail "the orb's install version is not $version"

shopt -s nullglob
assets=(dist/stepsecret-*-unknown-linux-musl dist/stepsecret-*-unknown-linux-musl.sha256)
[ ${#assets[@]} -ge 2 ] || fail "no binaries in dist/ (the build_static job's workspace)"
(cd dist && sha256sum -c ./*.sha256) || fail "dist/ checksums do not match"

api=https://api.github.com/repos/$repo
auth=(-H "Authorization: Bearer $GITHUB_TOKEN" -H "Accept: application/vnd.github+json")
body=$(printf '{"tag_name":"%s","name":"stepsecret %s","generate_release_notes":true}' "$tag" "$version")
upload=$(curl -fsS "${auth[@]}" -X POST "$api/releases" -d "$body" \
    | sed -n 's/.*"upload_url": *"\([^"{]*\).*/\1/p' | head -n 1)
[ -n "$upload" ] || fail "could not create the GitHub release $tag"
for asset in "${assets[@]}"; do
    echo "uploading $asset"
    curl -fsS "${auth[@]}" -H "Content-Type: application/octet-stream" \
        --data-binary "@$asset" "$upload?name=$(basename "$asset")" >/dev/null
done

if ! circleci orb --help >/dev/null 2>&1; then
    curl -fsSL https://raw.githubusercontent.com/CircleCI-Public/circleci-cli/main/install.sh \
        | DESTDIR="$HOME/bin" bash
    export PATH=$HOME/bin:$PATH
fi
circleci orb validate dist/orb.yml --token "$CIRCLE_TOKEN"
circleci orb publish dist/orb.yml "stepsecret/stepsecret@$version" --token "$CIRCLE_TOKEN"
