#!/usr/bin/env bash
# The release, executed as the two tag pipelines would run it, on a clean clone of HEAD:
#   - the commands are taken from the CI configurations themselves: the release step of
#     bitbucket-pipelines.yml's v* pipeline and the run steps of .circleci/test-deploy.yml's release
#     job, with BITBUCKET_TAG / CIRCLE_TAG = v<version>;
#   - `docker` is a shim on PATH that runs podman (runc, the ulimits this machine needs);
#   - the image registry is Debian's docker-registry on loopback (PIPE_IMAGE_REPO points there);
#   - GitHub's release API, its upload host and Bitbucket's Downloads API are one loopback
#     HTTP server that stores what it receives (GITHUB_API_URL, BITBUCKET_API_URL);
#   - the pipe repository is a local bare git repository (PIPE_REPO_URL);
#   - `circleci` is a stand-in that keeps the orb it is asked to publish.
# Then, as a user would: installs the binary from that server with the orb's install script
# (the packed orb's, digests written in) and refuses a tampered copy; pulls the pipe image back
# from the registry and runs it; checks the pipe repository's layout and tag.
#
# Needs the static binaries in dist/ (scripts/build-static.sh; run after the static builds in
# scripts/test.sh). RELEASE_TARGETS (default: x86_64, and aarch64 when built) limits them.
# Ends with "N passed, M failed".
# shellcheck disable=SC2016 # commands for other shells are single-quoted on purpose
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
started=$(date +%s)
# shellcheck source=scripts/lib/check.sh
. scripts/lib/check.sh
# shellcheck source=scripts/lib/ports.sh
. scripts/lib/ports.sh

bash scripts/deps/release.sh || { bad "scripts/deps/release.sh failed"; check_summary; exit 1; }
PATH="$HOME/.cache/stepsecret/bin:$PATH"
# A Python with PyYAML and check-jsonschema: the system's, else deps/orb.sh's venv.
py=python3
"$py" -c 'import yaml, check_jsonschema' 2>/dev/null || py=$HOME/.cache/stepsecret/orb-venv/bin/python3

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
targets=${RELEASE_TARGETS:-}
if [ -z "$targets" ]; then
    targets=x86_64
    [ -x dist/stepsecret-aarch64-unknown-linux-musl ] && targets="x86_64 aarch64"
fi
for arch in $targets; do
    [ -x "dist/stepsecret-$arch-unknown-linux-musl" ] || {
        bad "dist/stepsecret-$arch-unknown-linux-musl is missing: run scripts/build-static.sh first"
        check_summary
        exit 1
    }
done
case $targets in *aarch64*) ;; *) skip "aarch64: dist/stepsecret-aarch64-unknown-linux-musl not built; releasing x86_64 only" ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/stepsecret-release-test.XXXXXX")
pids=()
images=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    [ ${#images[@]} -eq 0 ] || podman rmi -f "${images[@]}" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# ---- the clean clone, with the static build's dist/ (the pipelines' artifacts / workspace)
git clone --quiet "$repo" "$work/clone" || { bad "git clone"; check_summary; exit 1; }
mkdir -p "$work/clone/dist"
for arch in $targets; do
    cp "dist/stepsecret-$arch-unknown-linux-musl" "dist/stepsecret-$arch-unknown-linux-musl.sha256" "$work/clone/dist/"
done
ok "a clean clone of $(git rev-parse --short HEAD) with dist/ from the static build ($targets)"

# ---- docker: podman underneath
mkdir -p "$work/shim"
cat >"$work/shim/docker" <<'SH'
#!/bin/sh
# docker -> podman, as root with runc (crun fails here), the ulimits containers need here, and
# a plain-HTTP loopback registry.
printf 'docker %s\n' "$*" >>"$SHIM_LOG"
cmd=$1
shift
case $cmd in
    build | run | create) exec podman --runtime runc "$cmd" --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 "$@" ;;
    push | pull | login) exec podman "$cmd" --tls-verify=false "$@" ;;
    *) exec podman "$cmd" "$@" ;;
esac
SH
chmod +x "$work/shim/docker"
export SHIM_LOG=$work/shim.log
: >"$SHIM_LOG"

# ---- the loopback registry
reg_port=$(free_port 1)
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$reg_port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)

# ---- the loopback release server: GitHub's release API and uploads, Bitbucket's Downloads
http_port=$(free_port 1)
mkdir -p "$work/www"
cat >"$work/server.py" <<'PY'
import http.server, json, os, sys
from email.parser import BytesParser
from email.policy import default
root, port = sys.argv[1], int(sys.argv[2])
log = open(os.path.join(root, "requests.log"), "a", buffering=1)

class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=os.path.join(root, "files"), **kw)

    def log_message(self, fmt, *args):
        log.write("%s %s\n" % (self.command, self.path))

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def store(self, where, name, data):
        os.makedirs(os.path.join(root, "files", where), exist_ok=True)
        with open(os.path.join(root, "files", where, os.path.basename(name)), "wb") as f:
            f.write(data)

    def do_POST(self):
        path, _, query = self.path.partition("?")
        auth = self.headers.get("Authorization", "")
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        log.write("POST %s auth=%s\n" % (self.path, "yes" if auth else "no"))
        if not auth:
            return self.reply(401, {"message": "Requires authentication"})
        if path.startswith("/repos/") and path.endswith("/releases"):
            release = json.loads(body)
            with open(os.path.join(root, "github-release.json"), "w") as f:
                json.dump(release, f)
            return self.reply(201, {"id": 1, "tag_name": release["tag_name"],
                "upload_url": "http://127.0.0.1:%d/uploads%s/1/assets{?name,label}" % (port, path)})
        if path.startswith("/uploads/"):
            name = dict(p.split("=", 1) for p in query.split("&") if "=" in p)["name"]
            self.store("github", name, body)
            return self.reply(201, {"name": name})
        if path.startswith("/2.0/repositories/") and path.endswith("/downloads"):
            head = b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n"
            form = BytesParser(policy=default).parsebytes(head + body)
            for part in form.iter_parts():
                self.store("downloads", part.get_filename(), part.get_payload(decode=True))
            return self.reply(201, {})
        self.reply(404, {"message": "Not Found"})

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
PY
python3 "$work/server.py" "$work/www" "$http_port" >"$work/server.log" 2>&1 &
pids+=($!)
mkdir -p "$work/www/files"

# ---- the pipe repository and the stand-in circleci
git init --quiet --bare "$work/pipe-remote.git"
mkdir -p "$work/circleci-bin"
cat >"$work/circleci-bin/circleci" <<'SH'
#!/bin/sh
# Stands in for the circleci CLI: records the call and keeps the orb it would publish.
printf 'circleci %s\n' "$*" >>"$CIRCLECI_LOG"
case "$1 $2" in
    "orb validate") test -s "$3" ;;
    "orb publish") cp "$3" "$CIRCLECI_PUBLISHED" ;;
    *) exit 1 ;;
esac
SH
chmod +x "$work/circleci-bin/circleci"

for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1 \
        && curl -sS -o /dev/null "http://127.0.0.1:$http_port/" 2>/dev/null && break
    sleep 0.1
done
check "the loopback registry answers (docker-registry on 127.0.0.1:$reg_port)" curl -fsS "http://127.0.0.1:$reg_port/v2/"
check "the loopback release server answers (127.0.0.1:$http_port)" curl -fsS -o /dev/null "http://127.0.0.1:$http_port/"

# ---- the commands the two tag pipelines run
"$py" - "$work" <<'PY'
import fnmatch, sys, yaml
work = sys.argv[1]
bb = yaml.safe_load(open("bitbucket-pipelines.yml"))
tags = bb["pipelines"]["tags"]
key = next(k for k in tags if fnmatch.fnmatchcase("v1.2.3", k))
steps = [s["step"] for s in tags[key] if "step" in s]
release = [s for s in steps if s.get("deployment") == "production"][-1]
open(f"{work}/bitbucket-release.sh", "w").write("set -e\n" + "\n".join(release["script"]) + "\n")
cc = yaml.safe_load(open(".circleci/test-deploy.yml"))
runs = [s["run"] for s in cc["jobs"]["release"]["steps"] if isinstance(s, dict) and "run" in s]
open(f"{work}/circleci-release.sh", "w").write("set -eo pipefail\n" + "\n".join(
    r if isinstance(r, str) else r["command"] for r in runs) + "\n")
PY
check "bitbucket's v* pipeline and circleci's release job both run scripts/release.sh" \
    grep -q 'scripts/release.sh' "$work/bitbucket-release.sh" "$work/circleci-release.sh"

image_repo=127.0.0.1:$reg_port/stepsecret/stepsecret-pipe
common_env=(PATH="$work/shim:$PATH" SHIM_LOG="$SHIM_LOG" RELEASE_TARGETS="$targets" PYTHON="$py"
    PIPE_IMAGE_REPO="$image_repo" HOME="$HOME" TMPDIR="${TMPDIR:-/tmp}")

# Bitbucket: tag v<version>, the docker service, the deployment's variables.
bb_started=$(date +%s)
(cd "$work/clone" && env -i "${common_env[@]}" BITBUCKET_TAG="v$version" \
    BITBUCKET_REPO_FULL_NAME=stepsecret/stepsecret BITBUCKET_API_URL="http://127.0.0.1:$http_port" \
    BB_AUTH=release-bot:app-password DOCKERHUB_USERNAME=release-bot DOCKERHUB_TOKEN=registry-token \
    PIPE_REPO_URL="file://$work/pipe-remote.git" \
    bash "$work/bitbucket-release.sh") >"$work/bitbucket.log" 2>&1
code=$?
check "the Bitbucket tag pipeline's release step exits 0 ($(( $(date +%s) - bb_started ))s)" \
    sh -c "test $code = 0 || { tail -20 '$work/bitbucket.log'; exit 1; }"
release_env=$work/clone/dist/release/release.env
pipe_version=$(sed -n 's/^PIPE_VERSION=//p' "$release_env" 2>/dev/null)
pipe_image=$(sed -n 's/^PIPE_IMAGE=//p' "$release_env" 2>/dev/null)
check "docker was the shim (build, run, save, login, push)" \
    sh -c "for c in build run save login push; do grep -q \"^docker \$c\" '$SHIM_LOG' || { echo \"no docker \$c\"; exit 1; }; done"
check "SHA256SUMS lists every binary and matches them" \
    sh -c "cd '$work/clone/dist/release' && test \$(wc -l <SHA256SUMS) = $(wc -w <<<"$targets") && sha256sum -c --quiet SHA256SUMS"
for arch in $targets; do
    check "Bitbucket Downloads received stepsecret-$arch-unknown-linux-musl, identical" \
        cmp "$work/www/files/downloads/stepsecret-$arch-unknown-linux-musl" "dist/stepsecret-$arch-unknown-linux-musl"
done
check "Bitbucket Downloads received SHA256SUMS" test -s "$work/www/files/downloads/SHA256SUMS"

# The pipe repository: pipe.yml at its root, tagged with the pipe's version.
git clone --quiet "$work/pipe-remote.git" "$work/pipe-checkout" 2>/dev/null
check "the pipe repository is tagged $pipe_version (what 'pipe: stepsecret/stepsecret-pipe:$pipe_version' resolves)" \
    sh -c "git -C '$work/pipe-remote.git' rev-parse -q --verify 'refs/tags/$pipe_version' >/dev/null"
check "the pipe repository holds pipe.yml, README.md, CHANGELOG.md, LICENSE and .semversioner/ at its root" \
    sh -c "cd '$work/pipe-checkout' && test -f pipe.yml -a -f README.md -a -f CHANGELOG.md -a -f LICENSE -a -d .semversioner"
check "its pipe.yml names the pushed image; README and semversioner agree on $pipe_version" \
    "$py" -c '
import re, subprocess, sys, yaml
d, image, version = sys.argv[1:]
meta = yaml.safe_load(open(d + "/pipe.yml"))
assert meta["image"] == image, meta["image"]
assert set(re.findall(r"stepsecret-pipe:([0-9][0-9.]*)", open(d + "/README.md").read())) == {version}
assert subprocess.run(["semversioner", "current-version"], cwd=d, capture_output=True, text=True).stdout.strip() == version
' "$work/pipe-checkout" "$pipe_image" "$pipe_version"
check "its CHANGELOG.md is semversioner's" sh -c "cd '$work/pipe-checkout' && semversioner changelog | diff - CHANGELOG.md"

# The image, pulled back from the registry and run as Bitbucket runs a pipe.
images+=("$pipe_image")
podman rmi -f "$pipe_image" >/dev/null 2>&1
check "the pipe image is pulled back from the registry ($pipe_image)" \
    podman pull --quiet --tls-verify=false "$pipe_image"
out=$(podman --runtime runc run --rm --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 "$pipe_image" --version 2>&1)
check "docker run IMAGE --version: $out" test "$out" = "stepsecret $version"
mkdir -p "$work/build"
podman --runtime runc run --rm --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 -v "$work/build:$work/build" -w "$work/build" \
    -e BITBUCKET_CLONE_DIR="$work/build" -e INSTALL=true "$pipe_image" >"$work/install.log" 2>&1
check "the pulled pipe's INSTALL drops the released x86_64 binary into the build folder" \
    cmp "$work/build/.stepsecret/bin/stepsecret" "dist/stepsecret-x86_64-unknown-linux-musl"

# CircleCI: tag v<version>, the release context's variables.
cc_started=$(date +%s)
(cd "$work/clone" && env -i "${common_env[@]}" PATH="$work/circleci-bin:$work/shim:$PATH" CIRCLE_TAG="v$version" \
    GITHUB_TOKEN=github-token GITHUB_API_URL="http://127.0.0.1:$http_port" CIRCLE_TOKEN=circle-token \
    CIRCLECI_LOG="$work/circleci.log" CIRCLECI_PUBLISHED="$work/published-orb.yml" \
    bash "$work/circleci-release.sh") >"$work/circleci.log.out" 2>&1
code=$?
check "the CircleCI release job exits 0 ($(( $(date +%s) - cc_started ))s)" \
    sh -c "test $code = 0 || { tail -20 '$work/circleci.log.out'; exit 1; }"
check "a GitHub release v$version was created" \
    python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["tag_name"] == "v" + sys.argv[2]' "$work/www/github-release.json" "$version"
for arch in $targets; do
    check "GitHub received stepsecret-$arch-unknown-linux-musl and its .sha256" \
        sh -c "cmp '$work/www/files/github/stepsecret-$arch-unknown-linux-musl' 'dist/stepsecret-$arch-unknown-linux-musl' && test -s '$work/www/files/github/stepsecret-$arch-unknown-linux-musl.sha256'"
done
check "GitHub's SHA256SUMS is Bitbucket's (one release, two hosts)" \
    cmp "$work/www/files/github/SHA256SUMS" "$work/www/files/downloads/SHA256SUMS"
check "the orb was validated and published as stepsecret/stepsecret@$version" \
    sh -c "grep -q '^circleci orb validate' '$work/circleci.log' && grep -q \"^circleci orb publish .* stepsecret/stepsecret@$version \" '$work/circleci.log'"
check "the published orb is valid (vendor.circle-ci)" \
    "$py" -m check_jsonschema --builtin-schema vendor.circle-ci "$work/published-orb.yml"

# ---- a user installs from the release host with the published orb's install script
"$py" - "$work/published-orb.yml" "$work/install.sh" <<'PY'
import sys, yaml
orb = yaml.safe_load(open(sys.argv[1]))
run = orb["commands"]["install"]["steps"][0]["run"]
open(sys.argv[2], "w").write(run["command"].replace("\\<<", "<<"))
PY
for arch in $targets; do
    check "the published orb carries the sha256 of the $arch binary" \
        grep -q "pinned_sha256_$arch=\"$(cut -d' ' -f1 "dist/stepsecret-$arch-unknown-linux-musl.sha256")\"" "$work/install.sh"
done
for sh_name in bash "busybox sh"; do
    # shellcheck disable=SC2086 # "busybox sh" is two words on purpose
    (env -i HOME="$work/home" PATH="$PATH" TMPDIR="${TMPDIR:-/tmp}" PARAM_VERSION="$version" \
        PARAM_INSTALL_DIR="$work/installed-${sh_name% *}" PARAM_DOWNLOAD_BASE_URL="http://127.0.0.1:$http_port/github" \
        $sh_name "$work/install.sh") >"$work/user-install.log" 2>&1
    code=$?
    check "[$sh_name] the orb's install script installs $version from the release host, against the pinned digest" \
        sh -c "test $code = 0 && grep -q 'verified against the digest this orb carries' '$work/user-install.log' && test \"\$('$work/installed-${sh_name% *}/stepsecret' --version)\" = 'stepsecret $version'"
done
# A compromised release host: another binary with a .sha256 that matches it.
mkdir -p "$work/www/files/evil"
cp "dist/stepsecret-x86_64-unknown-linux-musl" "$work/www/files/evil/stepsecret-x86_64-unknown-linux-musl"
printf 'x' >>"$work/www/files/evil/stepsecret-x86_64-unknown-linux-musl"
(cd "$work/www/files/evil" && sha256sum stepsecret-x86_64-unknown-linux-musl >stepsecret-x86_64-unknown-linux-musl.sha256)
(env -i HOME="$work/home" PATH="$PATH" TMPDIR="${TMPDIR:-/tmp}" PARAM_VERSION="$version" \
    PARAM_INSTALL_DIR="$work/evil-bin" PARAM_DOWNLOAD_BASE_URL="http://127.0.0.1:$http_port/evil" \
    sh "$work/install.sh") >"$work/evil.log" 2>&1
code=$?
check "the published orb refuses a tampered binary whose served .sha256 matches it" \
    sh -c "test $code != 0 && grep -q 'checksum mismatch' '$work/evil.log' && test ! -e '$work/evil-bin/stepsecret'"

# ---- a pending pipe change: the release bumps the pipe's version with semversioner
cp -R "$work/clone" "$work/bump"
(cd "$work/bump/pipe" && semversioner add-change --type patch --description "Test change for the release test." >/dev/null)
(cd "$work/bump" && env -i "${common_env[@]}" CONTAINER_ENGINE=docker RELEASE_OUT="$work/bump-out" scripts/release.sh) >"$work/bump.log" 2>&1
code=$?
check "with a pending semversioner change, release.sh (no --publish) bumps the pipe version in pipe.yml, README, CHANGELOG; publishes nothing" \
    "$py" -c '
import re, sys, yaml
out, code = sys.argv[1], sys.argv[2]
assert code == "0", open(sys.argv[3]).read()[-2000:]
env = dict(l.strip().split("=", 1) for l in open(out + "/release.env"))
old = [int(x) for x in env["VERSION"].split(".")]
pipe = env["PIPE_VERSION"]
assert yaml.safe_load(open(out + "/pipe-repo/pipe.yml"))["image"].endswith(":" + pipe)
assert set(re.findall(r"stepsecret-pipe:([0-9][0-9.]*)", open(out + "/pipe-repo/README.md").read())) == {pipe}
assert "## " + pipe in open(out + "/pipe-repo/CHANGELOG.md").read()
assert "nothing published" in open(sys.argv[3]).read()
print(pipe)
' "$work/bump-out" "$code" "$work/bump.log"
images+=("$(sed -n 's/^PIPE_IMAGE=//p' "$work/bump-out/release.env" 2>/dev/null)")

printf '\nrelease test took %ss\n' "$(( $(date +%s) - started ))"
check_summary
