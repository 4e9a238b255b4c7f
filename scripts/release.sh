#!/usr/bin/env bash
# The one release script, for both CI configurations: the release job of .circleci/test-deploy.yml
# (continued from the setup workflow in .circleci/config.yml) and bitbucket-pipelines.yml v* tags
# call it; neither repeats its steps.
#
#   scripts/release.sh                     build everything into $RELEASE_OUT (default dist/release)
#   scripts/release.sh --publish WHAT,...  then publish WHAT (needs the credentials below):
#       github     the GitHub release: binaries, .sha256 files, SHA256SUMS   GITHUB_TOKEN
#       orb        the packed orb as stepsecret/stepsecret@VERSION             CIRCLE_TOKEN
#       image      the pipe image to its registry (docker push)                DOCKERHUB_USERNAME, DOCKERHUB_TOKEN
#       pipe-repo  the pipe repository, tagged with the pipe's version         PIPE_REPO_URL (git, with its credentials)
#       downloads  the binaries to the Bitbucket repository's Downloads        BB_AUTH (user:app-password)
#
# Building:
#   1. the static binaries dist/stepsecret-{x86_64,aarch64}-unknown-linux-musl, built with
#      scripts/build-static.sh unless they are already there (RELEASE_TARGETS limits the set);
#   2. SHA256SUMS and one .sha256 per binary;
#   3. the pipe image, with pipe/build-image.sh (CONTAINER_ENGINE=docker on Bitbucket);
#   4. the orb, packed with this release's digests written into install.sh;
#   5. the pipe repository: pipe.yml at its root, README.md, CHANGELOG.md, LICENSE and
#      .semversioner/, the version bumped by `semversioner release` when changes are pending.
# Everything lands in $RELEASE_OUT: the assets, orb.yml, pipe-image.tar, pipe-repo/ and
# release.env (VERSION, PIPE_VERSION, PIPE_IMAGE).
#
# Settings: PYTHON (one with PyYAML; default python3, which gets it with pip), RELEASE_VERSION (default Cargo.toml's; a CIRCLE_TAG or BITBUCKET_TAG must be
# v<version>), PIPE_IMAGE_REPO (default stepsecret/stepsecret-pipe), GITHUB_REPOSITORY
# (stepsecret/stepsecret), GITHUB_API_URL, BITBUCKET_API_URL, BITBUCKET_REPO_FULL_NAME.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'release: %s\n' "$*" >&2; }
fail() { printf 'release: error: %s\n' "$*" >&2; exit 1; }

publish=""
while [ $# -gt 0 ]; do
    case $1 in
        --publish) publish=${2:?--publish needs a list}; shift 2 ;;
        --publish=*) publish=${1#--publish=}; shift ;;
        -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
        *) fail "unknown argument $1" ;;
    esac
done

# What the release needs beyond a CI image's basics (rust:1-bookworm, CircleCI's machine image,
# Bitbucket's docker-service steps): file, PyYAML for the orb packer, semversioner.
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
apt_install() {
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
py=${PYTHON:-python3}
command -v file >/dev/null 2>&1 || apt_install file
if ! "$py" -c 'import yaml' 2>/dev/null; then
    if ! "$py" -m pip --version >/dev/null 2>&1; then apt_install python3 python3-pip python3-yaml; fi
    "$py" -c 'import yaml' 2>/dev/null || "$py" -m pip install --quiet --user pyyaml 2>/dev/null \
        || "$py" -m pip install --quiet --user --break-system-packages pyyaml
fi
PATH=$HOME/.local/bin:$HOME/.cache/stepsecret/bin:$PATH
if ! command -v semversioner >/dev/null 2>&1; then
    "$py" -m pip install --quiet --user semversioner 2>/dev/null \
        || "$py" -m pip install --quiet --user --break-system-packages semversioner
fi

cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
version=${RELEASE_VERSION:-$cargo_version}
[ "$version" = "$cargo_version" ] || fail "RELEASE_VERSION $version but Cargo.toml says $cargo_version"
tag=${CIRCLE_TAG:-${BITBUCKET_TAG:-}}
if [ -n "$tag" ] && [ "$tag" != "v$version" ]; then
    fail "tag $tag but Cargo.toml says $version"
fi
out=${RELEASE_OUT:-dist/release}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
targets=${RELEASE_TARGETS:-x86_64 aarch64}
image_repo=${PIPE_IMAGE_REPO:-stepsecret/stepsecret-pipe}
log "stepsecret $version into $out"

# ---- 1, 2: binaries and checksums
for arch in $targets; do
    asset=stepsecret-$arch-unknown-linux-musl
    if [ ! -x "dist/$asset" ]; then
        log "building $asset (scripts/build-static.sh)"
        TARGET=$arch-unknown-linux-musl scripts/build-static.sh >&2
    fi
    file "dist/$asset" | grep -q 'statically linked' || fail "dist/$asset is not statically linked"
    cp "dist/$asset" "$out/$asset"
    (cd "$out" && sha256sum "$asset" >"$asset.sha256")
done
(cd "$out" && cat ./*.sha256 >SHA256SUMS)
log "SHA256SUMS:"
sed 's/^/    /' "$out/SHA256SUMS" >&2
[ "$("$out/stepsecret-x86_64-unknown-linux-musl" --version)" = "stepsecret $version" ] \
    || fail "the x86_64 binary does not say stepsecret $version"

# ---- 5 (first: the image's tag is the pipe's version): the pipe repository
pipe_out=$out/pipe-repo
mkdir -p "$pipe_out"
cp -R pipe/.semversioner "$pipe_out/"
cp pipe/pipe.yml pipe/README.md pipe/CHANGELOG.md LICENSE "$pipe_out/"
pipe_old=$(sed -n 's/^image: .*:\(.*\)$/\1/p' pipe/pipe.yml)
if [ -d "$pipe_out/.semversioner/next-release" ] \
    && [ -n "$(ls -A "$pipe_out/.semversioner/next-release" 2>/dev/null)" ]; then
    (cd "$pipe_out" && semversioner release >&2)
fi
pipe_version=$(cd "$pipe_out" && semversioner current-version)
(cd "$pipe_out" && semversioner changelog >CHANGELOG.md)
pipe_image=$image_repo:$pipe_version
# The pipe's own files name its image and version: rewrite them to this release's.
sed -i "s|^image: .*|image: $pipe_image|" "$pipe_out/pipe.yml"
sed -i "s|stepsecret/stepsecret-pipe:$pipe_old|stepsecret/stepsecret-pipe:$pipe_version|g" "$pipe_out/README.md"
log "pipe repository: $pipe_out (pipe $pipe_old -> $pipe_version)"

# ---- 3: the pipe image
image_id=$(pipe/build-image.sh "$pipe_image" "$out/stepsecret-x86_64-unknown-linux-musl")
engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
smoke=$("$engine" run --rm "$pipe_image" --version)
[ "$smoke" = "stepsecret $version" ] || fail "the pipe image says '$smoke', not stepsecret $version"
"$engine" save -o "$out/pipe-image.tar" "$pipe_image"
log "pipe image: $image_id ($smoke)"

# ---- 4: the orb, with this release's digests
pins=("$version")
for arch in $targets; do
    pins+=("$arch=$(cut -d' ' -f1 "$out/stepsecret-$arch-unknown-linux-musl.sha256")")
done
"$py" tests/orb/orbtool.py pack orb/src "$out/orb.yml" "${pins[@]}"
grep -q "pinned_version=\"$version\"" "$out/orb.yml" || fail "the packed orb carries no digests for $version"
"$py" - "$out/orb.yml" "$version" <<'PY' || fail "the orb's default version is not $2"
import sys, yaml
orb = yaml.safe_load(open(sys.argv[1]))
assert orb["commands"]["install"]["parameters"]["version"]["default"] == sys.argv[2]
PY
log "orb: $out/orb.yml (digests for $targets written in)"

printf 'VERSION=%s\nPIPE_VERSION=%s\nPIPE_IMAGE=%s\n' "$version" "$pipe_version" "$pipe_image" >"$out/release.env"

# ---- publishing, only when asked
[ -n "$publish" ] || { log "built; nothing published (no --publish)"; exit 0; }
assets=()
for arch in $targets; do
    assets+=("$out/stepsecret-$arch-unknown-linux-musl" "$out/stepsecret-$arch-unknown-linux-musl.sha256")
done
assets+=("$out/SHA256SUMS")
for what in ${publish//,/ }; do
    case $what in
        github)
            : "${GITHUB_TOKEN:?publishing the GitHub release needs GITHUB_TOKEN}"
            api=${GITHUB_API_URL:-https://api.github.com}/repos/${GITHUB_REPOSITORY:-stepsecret/stepsecret}
            auth=(-H "Authorization: Bearer $GITHUB_TOKEN" -H "Accept: application/vnd.github+json")
            body=$(printf '{"tag_name":"v%s","name":"stepsecret %s","generate_release_notes":true}' "$version" "$version")
            upload=$(curl -fsS "${auth[@]}" -X POST "$api/releases" -d "$body" \
                | sed -n 's/.*"upload_url": *"\([^"{]*\).*/\1/p' | head -n 1)
            [ -n "$upload" ] || fail "could not create the GitHub release v$version"
            for asset in "${assets[@]}"; do
                log "github: uploading $(basename "$asset")"
                curl -fsS "${auth[@]}" -H "Content-Type: application/octet-stream" \
                    --data-binary "@$asset" "$upload?name=$(basename "$asset")" >/dev/null
            done
            ;;
        orb)
            : "${CIRCLE_TOKEN:?publishing the orb needs CIRCLE_TOKEN}"
            if ! command -v circleci >/dev/null 2>&1; then
                curl -fsSL https://raw.githubusercontent.com/CircleCI-Public/circleci-cli/main/install.sh \
                    | DESTDIR="$HOME/bin" bash
                export PATH=$HOME/bin:$PATH
            fi
            circleci orb validate "$out/orb.yml" --token "$CIRCLE_TOKEN"
            circleci orb publish "$out/orb.yml" "stepsecret/stepsecret@$version" --token "$CIRCLE_TOKEN"
            ;;
        image)
            : "${DOCKERHUB_USERNAME:?pushing the pipe image needs DOCKERHUB_USERNAME}"
            : "${DOCKERHUB_TOKEN:?pushing the pipe image needs DOCKERHUB_TOKEN}"
            # Docker Hub, unless the image's name starts with a registry host.
            login=(docker login --username "$DOCKERHUB_USERNAME" --password-stdin)
            case ${image_repo%%/*} in *.* | *:*) login+=("${image_repo%%/*}") ;; esac
            printf '%s\n' "$DOCKERHUB_TOKEN" | "${login[@]}"
            docker push "$pipe_image"
            ;;
        pipe-repo)
            : "${PIPE_REPO_URL:?publishing the pipe repository needs PIPE_REPO_URL}"
            work=$(mktemp -d)
            git clone --quiet "$PIPE_REPO_URL" "$work/repo"
            (cd "$work/repo" && git rm -rq --ignore-unmatch . && cp -R "$pipe_out/." . \
                && git add -A && git -c user.name="stepsecret release" -c user.email=release@stepsecret.dev \
                    commit -qm "Release $pipe_version (stepsecret $version)" \
                && git tag "$pipe_version" && git push --quiet origin HEAD "refs/tags/$pipe_version")
            rm -rf "$work"
            ;;
        downloads)
            : "${BB_AUTH:?uploading to Downloads needs BB_AUTH (user:app-password)}"
            repo=${BITBUCKET_REPO_FULL_NAME:?uploading to Downloads needs BITBUCKET_REPO_FULL_NAME}
            for asset in "${assets[@]}"; do
                log "downloads: uploading $(basename "$asset")"
                curl -fsS -u "$BB_AUTH" -F "files=@$asset" \
                    "${BITBUCKET_API_URL:-https://api.bitbucket.org}/2.0/repositories/$repo/downloads" >/dev/null
            done
            ;;
        *) fail "unknown --publish target $what (github, orb, image, pipe-repo, downloads)" ;;
    esac
    log "published: $what"
done
