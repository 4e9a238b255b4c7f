#!/usr/bin/env bash
# Commands for the container and for sh -c are single-quoted on purpose; check() runs
# functions indirectly.
# shellcheck disable=SC2016,SC2317
# The Bitbucket pipe's tests: its files (hadolint, the README's YAML Definition against
# SchemaStore's bitbucket-pipelines schema, versions that agree), then the image itself, built
# with podman from the static binary and run the way Bitbucket runs a pipe: the build folder
# mounted at the same path and used as working directory, the BITBUCKET_* variables, the
# pipes' shared storage folder, host networking to reach OpenBao on loopback.
#
# Needs dist/stepsecret-x86_64-unknown-linux-musl (scripts/build-static.sh). Where podman
# cannot run containers here, the image cases are skipped with the reason printed.
# Ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
PATH="$HOME/.cache/stepsecret/bin:$PATH"
# shellcheck source=scripts/lib/check.sh
. scripts/lib/check.sh
finish() {
    echo
    echo "pipe: $passed passed, $failed failed, $skipped skipped"
    check_summary
    exit $?
}

if ! command -v podman >/dev/null || ! command -v hadolint >/dev/null || ! command -v semversioner >/dev/null; then
    bash scripts/deps/pipe.sh
fi

# --- the pipe's files --------------------------------------------------------------------------
check "hadolint pipe/Dockerfile" hadolint pipe/Dockerfile
check "shellcheck pipe/build-image.sh and this script" shellcheck -x pipe/build-image.sh scripts/test-pipe.sh scripts/lib/openbao.sh

work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${BAO_PID:-}" ] && kill "$BAO_PID" 2>/dev/null' EXIT
# The README's YAML Definition, wrapped in a pipeline the way a user pastes it.
python3 - "$work/definition.yml" <<'PY'
import re, sys
text = open("pipe/README.md").read()
section = text.split("## YAML Definition", 1)[1].split("\n## ", 1)[0]
snippet = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
body = "".join("          " + line + "\n" for line in snippet.splitlines())
open(sys.argv[1], "w").write("pipelines:\n  default:\n    - step:\n        oidc: true\n        script:\n" + body)
PY
check "README YAML Definition is a valid bitbucket-pipelines step" \
    check-jsonschema --builtin-schema vendor.bitbucket-pipelines "$work/definition.yml"
python3 - "$work/examples" <<'PY'
import re, sys, os
os.makedirs(sys.argv[1], exist_ok=True)
text = open("pipe/README.md").read().split("## Examples", 1)[1].split("\n## ", 1)[0]
for i, snippet in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
    body = "".join("    " + line + "\n" for line in snippet.splitlines())
    open(f"{sys.argv[1]}/example{i}.yml", "w").write("pipelines:\n  default:\n" + body)
PY
check "README examples are valid bitbucket-pipelines steps" \
    check-jsonschema --builtin-schema vendor.bitbucket-pipelines "$work"/examples/*.yml
yml_version=$(sed -n 's/^image: .*:\(.*\)$/\1/p' pipe/pipe.yml)
readme_versions=$(grep -o 'stepsecret-pipe:[0-9][0-9.]*' pipe/README.md | cut -d: -f2 | sort -u)
changes_version=$(cd pipe && semversioner current-version)
check "versions agree: pipe.yml $yml_version, README $readme_versions, semversioner $changes_version" \
    test "$yml_version" = "$readme_versions" -a "$yml_version" = "$changes_version"
check "CHANGELOG.md is semversioner's" sh -c "cd pipe && semversioner changelog | diff - CHANGELOG.md"
# Every variable the pipe reads: its own, and those of the sources that a pipe user sets.
pipe_vars="COMMAND SPEC SECRETS VAULT_ADDR VAULT_ROLE VAULT_AUTH_PATH VAULT_NAMESPACE VAULT_CACERT AWS_ROLE_ARN AWS_REGION STEPSECRET_AGE_IDENTITY EXPORT_RECIPIENT BUNDLE_TTL INSTALL INSTALL_DIR TIMEOUT AUDIT_LOG DEBUG"
check "README Variables, YAML Definition and pipe.yml variables: each lists every variable the pipe reads; Atlassian's sections" \
    python3 -c '
import re, sys, yaml
want = sys.argv[1].split()
text = open("pipe/README.md").read()
section = lambda name: text.split("## " + name, 1)[1].split("\n## ", 1)[0]
documented = re.findall(r"^\| ([A-Z_]{2,})[ |]", section("Variables"), re.M)
definition = re.findall(r"^ +(?:# )?([A-Z_]+):", section("YAML Definition"), re.M)
declared = [v["name"] for v in yaml.safe_load(open("pipe/pipe.yml"))["variables"]]
for where, names in (("README Variables", documented), ("YAML Definition", definition), ("pipe.yml", declared)):
    if sorted(names) != sorted(want):
        sys.exit(f"{where}: missing {sorted(set(want) - set(names))}, extra {sorted(set(names) - set(want))}")
for name in ("YAML Definition", "Variables", "Details", "Prerequisites", "Examples", "Support"):
    if f"\n## {name}\n" not in text:
        sys.exit(f"README has no ## {name}")
' "$pipe_vars"

# --- the image ---------------------------------------------------------------------------------
binary=dist/stepsecret-x86_64-unknown-linux-musl
if [ ! -x "$binary" ]; then
    skip "image tests: $binary is missing (run scripts/build-static.sh)"
    finish
fi
podman_run() { podman --runtime runc run --rm --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 "$@"; }
if ! tag=$(pipe/build-image.sh stepsecret/stepsecret-pipe:test 2>"$work/build.log"); then
    skip "image tests: podman cannot build here: $(tail -2 "$work/build.log" | tr '\n' ' ')"
    finish
fi
ok "image built: $tag ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
# What the tag pipeline's smoke test runs: docker run IMAGE --version.
if ! podman_run "$tag" --version >"$work/version" 2>&1; then
    skip "image tests: podman cannot run containers here: $(tail -2 "$work/version" | tr '\n' ' ')"
    finish
fi
check "IMAGE --version prints the version and exits 0: $(cat "$work/version")" \
    test "$(cat "$work/version")" = "stepsecret $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

# A build folder as Bitbucket lays it out: the repository, and the pipes' shared storage.
build="$work/build"
storage="$build/.bitbucket/pipelines/generated/pipeline/pipes"
mkdir -p "$build/ci" "$storage"
"$root/$binary" keygen -o "$work/repo-key.txt" >"$work/repo-recipient" 2>/dev/null
token="pipe-api-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
db="pipe-db-pw-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf 'API_TOKEN=%s\nDB_PASSWORD=%s\n' "$token" "$db" >"$work/plain.env"
"$root/$binary" seal -r "$(cat "$work/repo-recipient")" -o "$build/ci/secrets.env.age" "$work/plain.env" 2>/dev/null
rm "$work/plain.env"
printf '[env]\nAPI_TOKEN = "age://secrets.env.age#API_TOKEN"\n\n[files]\nDB_FILE = "age://secrets.env.age#DB_PASSWORD"\n' >"$build/ci/stepsecret.toml"
step="{$(cat /proc/sys/kernel/random/uuid)}"
pipe_bare() { # extra podman arguments..., then the image's run, as Bitbucket starts a pipe
    podman_run --network host -v "$build:$build" -w "$build" \
        -e BITBUCKET_BUILD_NUMBER=42 -e BITBUCKET_STEP_UUID="$step" \
        -e BITBUCKET_REPO_SLUG=app -e BITBUCKET_WORKSPACE=acme \
        -e BITBUCKET_CLONE_DIR="$build" \
        -e BITBUCKET_PIPE_SHARED_STORAGE_DIR="$storage" "$@" "$tag"
}
pipe() { pipe_bare -e STEPSECRET_AGE_IDENTITY="$(cat "$work/repo-key.txt")" "$@"; }
no_plain_secret_in_build() {
    ! grep -rqF -e "$token" -e "$db" "$build"
}

pipe -e SPEC=ci/stepsecret.toml \
    -e COMMAND='echo "token=$API_TOKEN"; test "$(cat "$DB_FILE")" = "'"$db"'" && echo file-ok; exit 7' \
    >"$work/out" 2>"$work/err"
code=$?
check "COMMAND's exit code is the pipe's (7)" test "$code" = 7
check "COMMAND sees the secrets, masked in its output" \
    diff <(printf 'token=[masked:API_TOKEN]\nfile-ok\n') "$work/out"
check "no value in the pipe's output or errors" sh -c "! grep -qF -e '$token' -e '$db' '$work/out' '$work/err'"
check "no plain secret anywhere under the build folder" no_plain_secret_in_build

# A template through the spec: .npmrc in the build folder while COMMAND runs, gone after.
printf '[values]\nAPI_TOKEN = "age://secrets.env.age#API_TOKEN"\n\n[templates]\nNPMRC = { template = "npmrc.tpl", path = ".npmrc" }\n' \
    >"$build/ci/templates.toml"
printf '//registry.npmjs.org/:_authToken={{ API_TOKEN }}\n' >"$build/ci/npmrc.tpl"
pipe -e SPEC=ci/templates.toml \
    -e COMMAND='test "$NPMRC" = "$PWD/.npmrc" && cat .npmrc && echo "env=${API_TOKEN-unset}"' \
    >"$work/out" 2>"$work/err"
code=$?
check "a template in the spec: COMMAND read .npmrc, masked, without the value in its environment" \
    diff <(printf '//registry.npmjs.org/:_authToken=[masked:API_TOKEN]\nenv=unset\n') "$work/out"
check "... exit 0, and .npmrc is gone after the pipe" test "$code" = 0 -a ! -e "$build/.npmrc"
check "no plain secret anywhere under the build folder" no_plain_secret_in_build

pipe -e SECRETS_COUNT=1 -e SECRETS_0='X=age://ci/secrets.env.age#NOPE' -e COMMAND='touch ran' >"$work/out" 2>"$work/err"
code=$?
check "a missing key fails closed with 69, naming the variable" sh -c "test $code = 69 && grep -q 'X (age://ci/secrets.env.age#NOPE)' '$work/err'"
check "and COMMAND never ran" test ! -e "$build/ran"

# Vault with the step's OIDC token: OpenBao on loopback, a Bitbucket-shaped token.
bao=$(bash scripts/deps/vault.sh 2>/dev/null)
# shellcheck source=scripts/lib/openbao.sh
. scripts/lib/openbao.sh
if bao_start "$bao" "$work"; then
    vault_pw="vault-pipe-pw-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    bao_api POST secret/data/app "{\"data\":{\"password\":\"$vault_pw\"}}"
    jwt_setup "$work"
    bao_api PUT sys/policies/acl/app '{"policy":"path \"secret/data/app\" { capabilities = [\"read\"] }"}'
    bao_api POST auth/jwt/role/bitbucket '{"role_type":"jwt","user_claim":"sub","bound_audiences":["ari:cloud:bitbucket::workspace/ws-1"],"bound_claims":{"repositoryUuid":"{repo-1}"},"token_policies":["app"],"token_ttl":"5m"}'
    oidc=$(jwt_sign "$work" '{"iss":"https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc","aud":"ari:cloud:bitbucket::workspace/ws-1","sub":"{repo-1}:{step-1}","repositoryUuid":"{repo-1}","workspaceUuid":"{ws-1}"}')
    pipe -e VAULT_ADDR="$VAULT_ADDR" -e VAULT_ROLE=bitbucket -e BITBUCKET_STEP_OIDC_TOKEN="$oidc" \
        -e SECRETS='DB_PASSWORD=vault://secret/app#password' \
        -e COMMAND='echo "pw=$DB_PASSWORD"; env | grep -c "^BITBUCKET_STEP_OIDC_TOKEN="' >"$work/out" 2>"$work/err"
    code=$?
    check "Vault JWT login with the step's OIDC token, from inside the pipe" test "$code" = 1
    check "the command saw the Vault secret masked, and no OIDC token" \
        diff <(printf 'pw=[masked:DB_PASSWORD]\n0\n') "$work/out"
    check "no Vault value or token in the pipe's output" sh -c "! grep -qF -e '$vault_pw' -e '$oidc' '$work/out' '$work/err'"
else
    bad "OpenBao did not start for the Vault case"
fi

# EXPORT_RECIPIENT: a bundle in shared storage, opened by a later command of the same step.
"$root/$binary" keygen -o "$work/step-key.txt" >"$work/step-recipient" 2>/dev/null
pipe -e SPEC=ci/stepsecret.toml -e EXPORT_RECIPIENT="$(cat "$work/step-recipient")" >"$work/out" 2>"$work/err"
code=$?
check "EXPORT_RECIPIENT writes a bundle (exit 0)" sh -c "test $code = 0 && test -s '$storage/stepsecret-bundle.age'"
check "the bundle and everything else under the build folder hold no plain secret" no_plain_secret_in_build
STEPSECRET_AGE_IDENTITY_FILE="$work/step-key.txt" BITBUCKET_STEP_UUID="{another-step}" \
    "$root/$binary" run --bundle "$storage/stepsecret-bundle.age" -- true >"$work/out" 2>"$work/err"
code=$?
check "another step's run refuses the bundle (77)" sh -c "test $code = 77 && grep -q 'belongs to step' '$work/err'"
STEPSECRET_AGE_IDENTITY_FILE="$work/step-key.txt" BITBUCKET_STEP_UUID="$step" \
    "$root/$binary" run --bundle "$storage/stepsecret-bundle.age" -- \
    sh -c 'echo "token=$API_TOKEN"; test "$(cat "$DB_FILE")" = "'"$db"'" && echo file-ok' >"$work/out" 2>"$work/err"
code=$?
check "the same step's stepsecret run --bundle gets the secrets, masked" \
    sh -c "test $code = 0 && printf 'token=[masked:API_TOKEN]\nfile-ok\n' | diff - '$work/out'"
check "the bundle is deleted after use" test ! -e "$storage/stepsecret-bundle.age"

# INSTALL, then the EXPORT_RECIPIENT flow exactly as the README's example runs it: the step's
# script (here: the host, without BITBUCKET_PIPE_SHARED_STORAGE_DIR) uses the installed binary
# for a key pair made in the step and for run --bundle.
rm -rf "$build/.stepsecret"
pipe_bare -e INSTALL=true >"$work/out" 2>"$work/err"
code=$?
installed="$build/.stepsecret/bin/stepsecret"
check "INSTALL: \"true\" copies the pipe's binary to \$BITBUCKET_CLONE_DIR/.stepsecret/bin, mode 0755" \
    sh -c "test $code = 0 && test \"\$(stat -c %a '$installed')\" = 755 && cmp -s '$installed' '$root/$binary'"
check "the installed binary runs in the step: $("$installed" --version 2>&1)" "$installed" --version
pipe_bare -e INSTALL=true -e INSTALL_DIR="$build/tools" -e COMMAND='test -x tools/stepsecret && echo installed-first' \
    -e STEPSECRET_AGE_IDENTITY="$(cat "$work/repo-key.txt")" -e SPEC=ci/stepsecret.toml >"$work/out" 2>"$work/err"
check "INSTALL_DIR with COMMAND: installed first, then the command runs" grep -qx installed-first "$work/out"
rm -rf "$build/tools"

step_key=$(mktemp -d)/stepsecret-step-key.txt
step_recipient=$(cd "$build" && ./.stepsecret/bin/stepsecret keygen -o "$step_key" 2>/dev/null)
pipe -e SPEC=ci/stepsecret.toml -e EXPORT_RECIPIENT="$step_recipient" >"$work/out" 2>"$work/err"
code=$?
check "EXPORT_RECIPIENT to a key pair made in the step: a bundle in the shared storage" \
    sh -c "test $code = 0 && test -s '$storage/stepsecret-bundle.age'"
check "no plain secret under the build folder" no_plain_secret_in_build
(cd "$build" && env -u BITBUCKET_PIPE_SHARED_STORAGE_DIR STEPSECRET_AGE_IDENTITY_FILE="$step_key" \
    BITBUCKET_STEP_UUID="$step" BITBUCKET_CLONE_DIR="$build" \
    ./.stepsecret/bin/stepsecret run --bundle stepsecret-bundle.age -- \
    sh -c 'echo "token=$API_TOKEN"; test "$(cat "$DB_FILE")" = "'"$db"'" && echo file-ok') >"$work/out" 2>"$work/err"
code=$?
check "the step's run --bundle stepsecret-bundle.age finds it in the default shared storage and opens it, masked" \
    sh -c "test $code = 0 && printf 'token=[masked:API_TOKEN]\nfile-ok\n' | diff - '$work/out'"
check "and deletes it" test ! -e "$storage/stepsecret-bundle.age"
rm -rf "$(dirname "$step_key")"

# Every COMMAND in the README's examples runs in the image: user scripts as POSIX sh stand-ins,
# everything else must be a command the image has.
python3 -c '
import re, sys, yaml
text = open("pipe/README.md").read().split("## Examples", 1)[1].split("\n## ", 1)[0]
for snippet in re.findall(r"```yaml\n(.*?)```", text, re.S):
    for item in yaml.safe_load(snippet)[0]["step"]["script"]:
        if isinstance(item, dict) and "COMMAND" in item.get("variables", {}):
            print(item["variables"]["COMMAND"])
' >"$work/commands"
mkdir -p "$build/build"
for script in deploy.sh ci/deploy.sh ci/write-config.sh; do
    printf '#!/bin/sh\nset -eu\necho "%s ran"\n' "$script" >"$build/$script"
    chmod +x "$build/$script"
done
while IFS= read -r command; do
    podman_run -v "$build:$build" -w "$build" --entrypoint /bin/sh "$tag" -c "$command" >"$work/out" 2>&1
    code=$?
    check "README example COMMAND runs in the image: $command" sh -c "test $code = 0 || { cat '$work/out'; exit 1; }"
done <"$work/commands"
check "the README has example COMMANDs" test -s "$work/commands"

podman rmi -f "$tag" >/dev/null 2>&1
finish
