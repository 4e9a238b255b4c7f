#!/bin/sh
# Builds the pipe image from the static release binary and Debian's busybox-static, with
# podman (as root, runc) or docker: no base image is pulled.
#
#   pipe/build-image.sh [TAG [BINARY]]
#       TAG     default stepsecret/stepsecret-pipe:<version in pipe.yml>
#       BINARY  default dist/stepsecret-x86_64-unknown-linux-musl
#   CONTAINER_ENGINE=docker|podman   default podman when installed, else docker
set -eu
case ${2:-} in
    # Absolute before the cd below, wherever this script is called from.
    "") binary=$(cd "$(dirname "$0")/.." && pwd)/dist/stepsecret-x86_64-unknown-linux-musl ;;
    /*) binary=$2 ;;
    *) binary=$PWD/$2 ;;
esac
cd "$(dirname "$0")"
[ -x "$binary" ] || { echo "build-image: $binary is missing: run scripts/build-static.sh first" >&2; exit 1; }
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q "statically linked"; then
    if ! { [ -x /bin/busybox ] && file -L /bin/busybox | grep -q "statically linked"; }; then
        echo "build-image: apt-get install busybox-static" >&2
        apt-get install -y -qq busybox-static >/dev/null
    fi
    busybox=/bin/busybox
fi
version=$(sed -n 's/^image: .*:\(.*\)$/\1/p' pipe.yml)
tag=${1:-stepsecret/stepsecret-pipe:$version}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp Dockerfile "$context/"
cp "$busybox" "$context/busybox"
cp "$binary" "$context/stepsecret"
engine=${CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
if [ "$engine" = podman ]; then
    podman --runtime runc build --quiet --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 -t "$tag" "$context" >/dev/null
else
    docker build --quiet -t "$tag" "$context" >/dev/null
fi
echo "$tag"
