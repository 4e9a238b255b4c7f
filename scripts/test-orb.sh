#!/usr/bin/env bash
# Tests the CircleCI orb (orb/src) and the project's CI configurations, without the circleci
# CLI or the network:
#   1. packs the orb (tests/orb/orbtool.py, following `circleci orb pack`);
#   2. validates the packed orb, every example's usage, .circleci/config.yml, test-deploy.yml and
#      bitbucket-pipelines.yml with check-jsonschema's bundled SchemaStore schemas;
#   3. checks parameters, includes, enums and the orb-tools review rules (see orbtool.py),
#      and that each of those checks fails on a copy of the orb broken the way it is about;
#   4. shellchecks every script (the orb's as POSIX sh);
#   5. executes orb/src/scripts/install.sh and run.sh as CircleCI would (PARAM_* variables, a
#      throw-away BASH_ENV) under bash -eo pipefail (cimg), dash (sh) and busybox sh with only
#      busybox's tools on PATH (Alpine: wget, no curl), against a loopback release server.
# Prints every check and ends with "N passed, 0 failed"; exits non-zero on any failure.
#
#   scripts/test-orb.sh    STEPSECRET_TEST_BIN=path/to/stepsecret tests another binary;
#                          STEPSECRET_ORB_OUT=dist/orb.yml keeps the packed, validated orb
# Single-quoted $VARs below are for the shells the tests start, not for this one:
# shellcheck disable=SC2016
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
started=$(date +%s)

CHECK_INDENT='  '
# shellcheck source=scripts/lib/check.sh
. scripts/lib/check.sh
section() { printf '\n== %s\n' "$*"; }
# Counts the PASS/FAIL lines a helper prints (fed by < <(...), not a pipe: a pipe's subshell
# would lose the counts).
tally() {
    local line
    while IFS= read -r line; do
        case $line in
            PASS\ *) ok "${line#PASS }" ;;
            FAIL\ *) bad "${line#FAIL }" ;;
            *) printf '        | %s\n' "$line" ;;
        esac
    done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stepsecret-orb-test.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------- tools
venv="${HOME}/.cache/stepsecret/orb-venv"
find_python() {
    local py
    for py in python3 "$venv/bin/python3"; do
        if "$py" -c 'import yaml, check_jsonschema' >/dev/null 2>&1; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    return 1
}
if ! py=$(find_python) || ! command -v shellcheck >/dev/null; then
    bash scripts/deps/orb.sh
    py=$(find_python) || { echo "check-jsonschema/pyyaml missing after scripts/deps/orb.sh" >&2; exit 1; }
fi
jsonschema() { "$py" -m check_jsonschema "$@"; }

bin=${STEPSECRET_TEST_BIN:-target/debug/stepsecret}
if [ ! -x "$bin" ] && [ -z "${STEPSECRET_TEST_BIN:-}" ]; then
    echo "building $bin (cargo build)"
    cargo build --locked --quiet || { echo "cargo build failed" >&2; exit 1; }
fi
[ -x "$bin" ] || { echo "no stepsecret binary at $bin" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
version=$("$bin" --version | sed -n 's/^stepsecret //p')
printf 'binary under test: %s (%s)\n' "$bin" "$version"

# ---------------------------------------------------------------- 1. pack
section "pack the orb (circleci orb pack rules)"
packed=$tmp/orb.yml
check "orb/src packs into one orb file" "$py" tests/orb/orbtool.py pack orb/src "$packed"
check "the packed orb has the commands install and run, the job run, the executor default" \
    "$py" -c 'import sys, yaml
o = yaml.safe_load(open(sys.argv[1]))
assert set(o["commands"]) == {"install", "run"}, o["commands"].keys()
assert set(o["jobs"]) == {"run"} and set(o["executors"]) == {"default"}
assert len(o["examples"]) == 3
def runs(steps):
    for step in steps:
        if "run" in step:
            yield step["run"]
        elif "when" in step:
            yield from runs(step["when"]["steps"])
for c in ("install", "run"):
    for run in runs(o["commands"][c]["steps"]):
        assert run["command"].startswith("#!/bin/sh"), c + ": the include was not inlined"
' "$packed"
# circleci orb pack's rules on a small orb: an include inside a longer value is replaced in
# place; `<<` in an included file is escaped as \<<; two includes in one value are refused.
mini=$tmp/mini-orb
mkdir -p "$mini/commands" "$mini/scripts"
printf 'version: 2.1\ndescription: A small orb to test the packer.\n' >"$mini/@orb.yml"
printf 'cat <<EOF\nhello << parameters.who >>\nEOF\n' >"$mini/scripts/hello.sh"
printf 'description: Says hello.\nsteps:\n  - run:\n      name: hello\n      command: |\n        set -e\n        <<include(scripts/hello.sh)>>\n' >"$mini/commands/hello.yml"
check "packer: an include inside a longer value is inlined there, with << escaped as \\<<" \
    "$py" -c 'import subprocess, sys, yaml
subprocess.run([sys.executable, "tests/orb/orbtool.py", "pack", sys.argv[1], sys.argv[2]], check=True)
cmd = yaml.safe_load(open(sys.argv[2]))["commands"]["hello"]["steps"][0]["run"]["command"]
assert cmd == "set -e\ncat \\<<EOF\nhello \\<< parameters.who >>\nEOF\n\n", repr(cmd)' "$mini" "$tmp/mini.yml"
printf 'description: Says hello twice.\nsteps:\n  - run:\n      name: twice\n      command: "<<include(scripts/hello.sh)>> <<include(scripts/hello.sh)>>"\n' >"$mini/commands/twice.yml"
check "packer: two includes in one value are refused" \
    bash -c '! "$1" tests/orb/orbtool.py pack "$2" "$3" 2>/dev/null' _ "$py" "$mini" "$tmp/mini2.yml"

# ---------------------------------------------------------------- 2. schemas
section "schemas (check-jsonschema, SchemaStore's circle-ci and bitbucket-pipelines)"
check "the packed orb is valid (vendor.circle-ci)" jsonschema --builtin-schema vendor.circle-ci "$packed"
"$py" tests/orb/orbtool.py usages orb/src "$tmp/usages" >/dev/null
for usage in "$tmp"/usages/*.yml; do
    check "example $(basename "$usage" .yml): its usage is a valid config (vendor.circle-ci)" \
        jsonschema --builtin-schema vendor.circle-ci "$usage"
done
# The schema must be able to say no, or the checks above prove nothing.
"$py" -c 'import sys, yaml
o = yaml.safe_load(open(sys.argv[1]))
o["commands"]["run"]["steps"] = {"run": "not a list"}
yaml.safe_dump(o, open(sys.argv[2], "w"))' "$packed" "$tmp/broken-orb.yml"
check "a packed orb whose steps are not a list is rejected (the schema is applied)" \
    bash -c '! "$@"' _ "$py" -m check_jsonschema --builtin-schema vendor.circle-ci "$tmp/broken-orb.yml"
for config in .circleci/config.yml .circleci/test-deploy.yml; do
    check "$config is valid (vendor.circle-ci)" jsonschema --builtin-schema vendor.circle-ci "$config"
done
check "bitbucket-pipelines.yml is valid (vendor.bitbucket-pipelines)" \
    jsonschema --builtin-schema vendor.bitbucket-pipelines bitbucket-pipelines.yml

if [ -n "${STEPSECRET_ORB_OUT:-}" ]; then
    check "the packed orb is kept at $STEPSECRET_ORB_OUT" cp "$packed" "$STEPSECRET_ORB_OUT"
fi

# ---------------------------------------------------------------- 3. review
section "parameters, includes and orb-tools review rules"
tally < <("$py" tests/orb/orbtool.py review orb/src Cargo.toml 2>&1)
section "the review checks can fail: each broken copy of orb/src is caught"
tally < <("$py" tests/orb/orbtool.py selftest orb/src Cargo.toml 2>&1)
section "the CI configurations' jobs, filters and gates"
tally < <("$py" tests/orb/ci_configs.py .circleci/config.yml .circleci/test-deploy.yml bitbucket-pipelines.yml 2>&1)

# ---------------------------------------------------------------- 4. shellcheck
section "shellcheck"
for script in orb/src/scripts/*.sh; do
    check "shellcheck -s sh $script (POSIX)" shellcheck -s sh "$script"
    check "dash -n $script" dash -n "$script"
done
for script in .circleci/scripts/*.sh; do
    check "shellcheck -s sh $script (POSIX: it runs on Alpine too)" shellcheck -s sh "$script"
done
for script in scripts/test-orb.sh scripts/deps/orb.sh; do
    [ -f "$script" ] || continue
    check "shellcheck $script" shellcheck -x "$script"
done

# ---------------------------------------------------------------- 5. execute the scripts
section "install.sh and run.sh, executed as CircleCI would"

# The release server: stepsecret-<arch>-unknown-linux-musl and its .sha256, good and broken.
www=$tmp/www
asset=stepsecret-x86_64-unknown-linux-musl
arm_asset=stepsecret-aarch64-unknown-linux-musl
mkdir -p "$www/good" "$www/bad" "$www/nosum" "$www/othername"
# One snapshot of the binary, so every copy is the same file even if a build replaces $bin.
cp "$bin" "$www/snapshot"
for dir in good bad nosum othername; do cp "$www/snapshot" "$www/$dir/$asset"; done
cp "$www/snapshot" "$www/good/$arm_asset"
(cd "$www/good" && sha256sum "$asset" >"$asset.sha256" && sha256sum "$arm_asset" >"$arm_asset.sha256")
printf '%s  %s\n' "$(printf 'not the binary' | sha256sum | cut -d' ' -f1)" "$asset" >"$www/bad/$asset.sha256"
printf '%s  %s\n' "$(cut -d' ' -f1 "$www/good/$asset.sha256")" "$arm_asset" >"$www/othername/$asset.sha256"
# A compromised release host: another binary, and a .sha256 that matches it.
mkdir -p "$www/tampered"
cp "$www/snapshot" "$www/tampered/$asset"
printf 'tampered' >>"$www/tampered/$asset"
(cd "$www/tampered" && sha256sum "$asset" >"$asset.sha256")
# install.sh as the release packs it: this version's digests written in.
pinned_install=$tmp/pinned-install.sh
"$py" tests/orb/orbtool.py pin orb/src/scripts/install.sh "$pinned_install" "$version" \
    "x86_64=$(cut -d' ' -f1 "$www/good/$asset.sha256")" "aarch64=$(cut -d' ' -f1 "$www/good/$arm_asset.sha256")"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$www" >"$tmp/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$tmp/server.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/server.log"; echo "the release server did not start" >&2; exit 1; }
base=http://127.0.0.1:$port
printf '  release server: %s (%s)\n' "$base" "$www"
requests() { grep -c "\"GET /$1 HTTP" "$tmp/server.log" || true; }

# The project that uses the orb: an age identity, a sealed dotenv file and a spec.
proj=$tmp/proj
mkdir -p "$proj/ci"
value="s3cr3t-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
recipient=$("$bin" keygen -o "$tmp/identity.txt" 2>/dev/null | grep -o 'age1[0-9a-z]*' | head -n 1)
printf 'API_TOKEN=%s\n' "$value" >"$tmp/secrets.env"
"$bin" seal -r "$recipient" -o "$proj/ci/secrets.env.age" "$tmp/secrets.env" >/dev/null 2>&1
printf '[env]\nAPI_TOKEN = "age://secrets.env.age#API_TOKEN"\n' >"$proj/ci/stepsecret.toml"
# The same value delivered the way npm reads it: a template rendered to .npmrc in the project.
printf '[values]\nAPI_TOKEN = "age://secrets.env.age#API_TOKEN"\n\n[templates]\nNPMRC = { template = "npmrc.tpl", path = ".npmrc" }\n' \
    >"$proj/ci/templates.toml"
printf '//registry.npmjs.org/:_authToken={{ API_TOKEN }}\n' >"$proj/ci/npmrc.tpl"
check "fixture: keygen gave a recipient and seal wrote secrets.env.age" \
    test -n "$recipient" -a -s "$proj/ci/secrets.env.age"

# Fake tools: uname reporting another machine, circleci minting a token, curl/wget that
# only log their URL.
fakes=$tmp/fakes
mkdir -p "$fakes/arm" "$fakes/riscv" "$fakes/darwin" "$fakes/windows" "$fakes/circleci" "$fakes/nonet"
printf '#!/bin/sh\ncase "$1" in -m) echo arm64 ;; *) echo Darwin ;; esac\n' >"$fakes/darwin/uname"
printf '#!/bin/sh\ncase "$1" in -m) echo x86_64 ;; *) echo MINGW64_NT-10.0-20348 ;; esac\n' >"$fakes/windows/uname"
for m in arm:aarch64 riscv:riscv64; do
    printf '#!/bin/sh\ncase "$1" in -m) echo %s ;; -s) echo Linux ;; *) echo Linux ;; esac\n' "${m#*:}" \
        >"$fakes/${m%%:*}/uname"
done
# A stand-in for the circleci CLI of a job: `env subst` expands $VAR and ${VAR} from its
# environment as the real one does (unset: empty); `run oidc get` prints $FAKE_OIDC_TOKEN (else a
# fixed one), failing the first $FAKE_OIDC_FAILS times. Each call is logged as a JSON list.
{
    # The interpreter itself, not a shim: busybox's PATH has no python3.
    printf '#!%s\n' "$(python3 -c 'import sys; print(sys.executable)')"
    cat <<'PY'
import json, os, re, sys
args = sys.argv[1:]
log = os.environ.get("FAKE_CIRCLECI_LOG")
if log:
    with open(log, "a") as f:
        f.write(json.dumps(args) + "\n")
if args[:2] == ["env", "subst"]:
    text = args[2] if len(args) > 2 else sys.stdin.read()
    name = r"[A-Za-z_][A-Za-z0-9_]*"
    sys.stdout.write(re.sub(r"\$\{(%s)\}|\$(%s)" % (name, name),
                            lambda m: os.environ.get(m.group(1) or m.group(2), ""), text))
    sys.exit(0)
if args[:3] == ["run", "oidc", "get"]:
    counter = os.environ.get("FAKE_OIDC_COUNTER")
    fails = int(os.environ.get("FAKE_OIDC_FAILS", "0"))
    if counter:
        n = int(open(counter).read() or 0) if os.path.exists(counter) else 0
        open(counter, "w").write(str(n + 1))
        if n < fails:
            sys.exit("Error: could not get an OIDC token")
    print(os.environ.get("FAKE_OIDC_TOKEN", "fake.oidc.token-for-the-test"))
    sys.exit(0)
sys.exit("fake circleci: unknown command " + " ".join(args))
PY
} >"$fakes/circleci/circleci"
for tool in curl wget; do
    printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"$FAKE_NET_LOG"\nexit 22\n' >"$fakes/nonet/$tool"
done
chmod +x "$fakes"/*/*

busybox_bin=$(command -v busybox || true)
shells=(bash dash)
if [ -n "$busybox_bin" ]; then
    shells+=(busybox)
    bbdir=$tmp/busybox-bin
    mkdir -p "$bbdir"
    "$busybox_bin" --install -s "$bbdir"
else
    skip "busybox sh (Alpine): busybox is not installed (apt-get install busybox-static)"
fi

# orb_sh SCRIPT [VAR=VALUE]...: runs orb/src/scripts/SCRIPT like a CircleCI step: a clean
# environment (HOME, PATH, TMPDIR, BASH_ENV and the step's PARAM_* variables), in $cwd.
orb_sh() {
    local script=$1
    shift
    (cd "$cwd" && env -i HOME="$home" PATH="$cur_path" TMPDIR="$tmpdir" BASH_ENV="$bash_env" \
        "$@" "${cur_shell[@]}" "$(case $script in /*) echo "$script" ;; *) echo "$repo/orb/src/scripts/$script" ;; esac)")
}
# expect_out RC PATTERN... / with "!PATTERN" for absence: checks $out and $rc of the last run.
run_orb() {
    out=$(orb_sh "$@" 2>&1)
    rc=$?
}
has() { grep -qF -- "$1" <<<"$out"; }

for sh_name in "${shells[@]}"; do
    case $sh_name in
        bash) label="bash -eo pipefail (cimg)"; cur_shell=("$(command -v bash)" -eo pipefail); std_path=$PATH ;;
        dash) label="dash -e (sh)"; cur_shell=("$(command -v dash)" -e); std_path=$PATH ;;
        busybox) label="busybox sh, busybox tools only (Alpine)"; cur_shell=("$busybox_bin" sh -e); std_path=$bbdir ;;
    esac
    printf '\n  -- %s\n' "$label"
    d=$tmp/$sh_name
    home=$d/home
    tmpdir=$d/tmp
    bash_env=$d/bash_env
    cwd=$proj
    mkdir -p "$home" "$tmpdir"
    printf 'export EXISTING_SETTING="from an earlier step"\n' >"$bash_env"
    cp "$bash_env" "$d/bash_env.before"
    cur_path=$std_path
    inst=$d/bin

    # install: fresh, then again (skipped), then refusals.
    before=$(requests "good/$asset")
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$inst" PARAM_DOWNLOAD_BASE_URL="$base/good"
    check "[$sh_name] install.sh exits 0 and installs into install_dir" test "$rc" -eq 0 -a -x "$inst/stepsecret"
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/        | /'
    check "[$sh_name] the installed binary runs: stepsecret $version" \
        test "$("$inst/stepsecret" --version 2>&1)" = "stepsecret $version"
    check "[$sh_name] the binary was downloaded once, with its .sha256" \
        test "$(requests "good/$asset")" -eq $((before + 1)) -a "$(requests "good/$asset.sha256")" -ge 1
    check "[$sh_name] install_dir holds only stepsecret (no staged or temporary file)" \
        test "$(ls -A "$inst")" = stepsecret
    before=$(requests "good/$asset")
    run_orb install.sh PARAM_VERSION="v$version" PARAM_INSTALL_DIR="$inst" PARAM_DOWNLOAD_BASE_URL="$base/good"
    check "[$sh_name] installing the same version again (v-prefixed) skips the download" \
        test "$rc" -eq 0 -a "$(requests "good/$asset")" -eq "$before"
    check "[$sh_name] ... and says so" has "already installed"

    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/bad-bin" PARAM_DOWNLOAD_BASE_URL="$base/bad"
    check "[$sh_name] a wrong checksum: install refuses (non-zero, 'checksum mismatch')" \
        test "$rc" -ne 0 -a "$(grep -c 'checksum mismatch' <<<"$out")" -ge 1
    check "[$sh_name] ... and leaves nothing behind (no install_dir file, no temp dir)" \
        test -z "$(ls -A "$d/bad-bin" 2>/dev/null)$(ls -A "$tmpdir")"
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/nosum-bin" PARAM_DOWNLOAD_BASE_URL="$base/nosum"
    check "[$sh_name] no .sha256 published: install refuses and leaves nothing" \
        test "$rc" -ne 0 -a -z "$(ls -A "$d/nosum-bin" 2>/dev/null)$(ls -A "$tmpdir")"
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/other-bin" PARAM_DOWNLOAD_BASE_URL="$base/othername"
    check "[$sh_name] a .sha256 naming another file: install refuses" \
        test "$rc" -ne 0 -a ! -e "$d/other-bin/stepsecret"

    mkdir -p "$d/upgrade"
    printf '#!/bin/sh\necho stepsecret 0.0.1\n' >"$d/upgrade/stepsecret"
    chmod +x "$d/upgrade/stepsecret"
    cp "$d/upgrade/stepsecret" "$d/old-stepsecret"
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/upgrade" PARAM_DOWNLOAD_BASE_URL="$base/bad"
    check "[$sh_name] a refused upgrade keeps the installed older version intact" \
        bash -c '[ "$1" -ne 0 ] && cmp -s "$2/upgrade/stepsecret" "$2/old-stepsecret"' _ "$rc" "$d"
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/upgrade" PARAM_DOWNLOAD_BASE_URL="$base/good"
    check "[$sh_name] another installed version (0.0.1) is replaced by the pinned one" \
        test "$rc" -eq 0 -a "$("$d/upgrade/stepsecret" --version 2>&1)" = "stepsecret $version"
    run_orb install.sh PARAM_VERSION="9.9.9" PARAM_INSTALL_DIR="$d/upgrade" PARAM_DOWNLOAD_BASE_URL="$base/good"
    check "[$sh_name] a binary that is not the pinned version is refused; the installed one stays" \
        test "$rc" -ne 0 -a "$("$d/upgrade/stepsecret" --version 2>&1)" = "stepsecret $version"

    if [ "$sh_name" = busybox ]; then
        # busybox sh runs its uname applet in-process, whatever PATH says.
        skip "[$sh_name] aarch64/riscv64 via a fake uname: busybox sh ignores it (checked under bash and dash)"
    else
        before=$(requests "good/$arm_asset")
        cur_path=$fakes/arm:$std_path
        run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/arm-bin" PARAM_DOWNLOAD_BASE_URL="$base/good"
        check "[$sh_name] on aarch64 the aarch64 asset is downloaded" \
            test "$rc" -eq 0 -a "$(requests "good/$arm_asset")" -eq $((before + 1))
        cur_path=$fakes/riscv:$std_path
        run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/riscv-bin" PARAM_DOWNLOAD_BASE_URL="$base/good"
        check "[$sh_name] an unsupported architecture (riscv64) is refused by name" \
            test "$rc" -ne 0 -a "$(grep -c riscv64 <<<"$out")" -ge 1 -a ! -e "$d/riscv-bin/stepsecret"
    fi
    cur_path=$fakes/nonet:$std_path
    : >"$d/net.log"
    run_orb install.sh PARAM_VERSION="v0.2.0" PARAM_INSTALL_DIR="$d/gh-bin" FAKE_NET_LOG="$d/net.log"
    check "[$sh_name] the default download URL is the GitHub release of the pinned version" \
        grep -qF "https://github.com/stepsecret/stepsecret/releases/download/v0.2.0/$asset" "$d/net.log"
    cur_path=$std_path
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="~/tools" PARAM_DOWNLOAD_BASE_URL="$base/good"
    check "[$sh_name] install_dir ~/tools means \$HOME/tools" test "$rc" -eq 0 -a -x "$home/tools/stepsecret"

    # run: with the age source, as one step.
    cur_path=$inst:$std_path
    run_orb run.sh PARAM_COMMAND='echo "token=$API_TOKEN"; test -n "$API_TOKEN"' \
        PARAM_SPEC=ci/stepsecret.toml PARAM_REDACT=true STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] run.sh with spec: the command ran and exited 0" test "$rc" -eq 0
    check "[$sh_name] ... its output shows token=[masked:API_TOKEN]" has "token=[masked:API_TOKEN]"
    check "[$sh_name] ... and never the value" bash -c '! grep -qF -- "$1" <<<"$2"' _ "$value" "$out"
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/        | /'

    # run: a spec with a template; the file exists for the command only.
    run_orb run.sh PARAM_COMMAND='test "$NPMRC" = "$PWD/.npmrc" && cat .npmrc && echo "env=${API_TOKEN-unset}"' \
        PARAM_SPEC=ci/templates.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] run.sh with a template: the command read .npmrc, masked" \
        has "//registry.npmjs.org/:_authToken=[masked:API_TOKEN]"
    check "[$sh_name] ... the template-only value was not in its environment" has "env=unset"
    check "[$sh_name] ... and .npmrc is gone after the step" test "$rc" -eq 0 -a ! -e "$cwd/.npmrc"
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/        | /'

    run_orb run.sh PARAM_COMMAND='echo started; exit 7' PARAM_SPEC=ci/stepsecret.toml \
        STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] a failing command's exit code (7) is the step's" test "$rc" -eq 7
    run_orb run.sh PARAM_COMMAND='kill -TERM $$' PARAM_SPEC=ci/stepsecret.toml \
        STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] a command killed by SIGTERM gives 143" test "$rc" -eq 143

    cur_path=$std_path
    run_orb run.sh PARAM_COMMAND='echo "api=$API_TOKEN"' PARAM_INSTALL_DIR="$inst" \
        PARAM_SECRETS="# a comment
API_TOKEN=age://ci/secrets.env.age#API_TOKEN" STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] secrets (NAME=REF lines) and install_dir off PATH: masked output" \
        test "$rc" -eq 0 -a "$(grep -c 'api=\[masked:API_TOKEN\]' <<<"$out")" -eq 1
    run_orb run.sh PARAM_COMMAND='echo "raw=$API_TOKEN"' PARAM_INSTALL_DIR="$inst" PARAM_REDACT=false \
        PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] redact=false passes --no-redact: the command sees the terminal unmasked" \
        test "$rc" -eq 0 -a "$(grep -cF "raw=$value" <<<"$out")" -eq 1
    cur_path=$inst:$std_path
    show='echo "role=${STEPSECRET_VAULT_ROLE-unset} path=${STEPSECRET_VAULT_AUTH_PATH-unset} arn=${AWS_ROLE_ARN-unset} spec=${STEPSECRET_SPEC-unset}"'
    run_orb run.sh PARAM_COMMAND="$show" PARAM_SECRETS="API_TOKEN=age://ci/secrets.env.age#API_TOKEN" \
        PARAM_VAULT_ROLE=ci-deploy PARAM_VAULT_AUTH_PATH=circleci \
        PARAM_AWS_ROLE_ARN=arn:aws:iam::123456789012:role/ci STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] vault_role, vault_auth_path, aws_role_arn reach stepsecret as its variables" \
        has "role=ci-deploy path=circleci arn=arn:aws:iam::123456789012:role/ci spec=unset"
    run_orb run.sh PARAM_COMMAND="$show" PARAM_SECRETS="API_TOKEN=age://ci/secrets.env.age#API_TOKEN" \
        PARAM_SPEC="" PARAM_VAULT_ROLE="" PARAM_VAULT_AUTH_PATH="" PARAM_AWS_ROLE_ARN="" \
        STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] empty parameters set no variable" has "role=unset path=unset arn=unset spec=unset"

    cur_path=$fakes/circleci:$inst:$std_path
    run_orb run.sh PARAM_COMMAND='echo "ran token=${STEPSECRET_OIDC_TOKEN-unset}"' PARAM_OIDC_AUDIENCE='vault.example.com "x"' \
        PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt" \
        FAKE_CIRCLECI_LOG="$d/circleci.log" CIRCLE_OIDC_TOKEN_V2=job.token
    check "[$sh_name] oidc_audience mints a token: circleci run oidc get --claims with that aud (JSON)" \
        "$py" -c 'import json, sys
calls = [json.loads(l) for l in open(sys.argv[1])]
args = [c for c in calls if c[:3] == ["run", "oidc", "get"]]
assert len(args) == 1 and args[0][:4] == ["run", "oidc", "get", "--claims"], calls
assert json.loads(args[0][4]) == {"aud": "vault.example.com \"x\""}, args[0][4]' "$d/circleci.log"
    check "[$sh_name] ... the command ran, and the minted token never reached it" \
        test "$rc" -eq 0 -a "$(grep -c '^ran token=unset$' <<<"$out")" -eq 1 -a "$(grep -c fake.oidc <<<"$out")" -eq 0
    cur_path=$inst:$std_path
    run_orb run.sh PARAM_COMMAND='echo ran' PARAM_OIDC_AUDIENCE='aud' PARAM_SPEC=ci/stepsecret.toml \
        STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] oidc_audience without the circleci CLI fails before running anything" \
        test "$rc" -ne 0 -a "$(grep -c '^ran$' <<<"$out")" -eq 0

    run_orb run.sh PARAM_COMMAND='touch ran.marker' PARAM_SECRETS="API_TOKEN=age://ci/secrets.env.age#NO_SUCH_KEY" \
        STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] a secret that cannot be resolved: non-zero and the command never starts" \
        test "$rc" -ne 0 -a ! -e "$proj/ran.marker"
    run_orb run.sh PARAM_COMMAND=''
    check "[$sh_name] an empty command is a usage error (64)" test "$rc" -eq 64
    cur_path=$std_path
    run_orb run.sh PARAM_COMMAND='echo ran'
    check "[$sh_name] stepsecret not installed: 127 and a hint to add stepsecret/install" \
        test "$rc" -eq 127 -a "$(grep -c 'stepsecret/install' <<<"$out")" -eq 1

    # --- circleci env subst on every parameter but command (a stand-in circleci CLI)
    cur_path=$fakes/circleci:$inst:$std_path
    : >"$d/subst.log"
    show_vars='echo "role=${STEPSECRET_VAULT_ROLE-unset} addr=${VAULT_ADDR-unset} ns=${VAULT_NAMESPACE-unset} region=${AWS_REGION-unset} public=${STEPSECRET_PUBLIC-unset} maxage=${STEPSECRET_MAX_AGE-unset}"; echo '"'"'literal=${CTX_ROLE}'"'"
    run_orb run.sh PARAM_COMMAND="$show_vars" PARAM_SECRETS='API_TOKEN=age://${SECRETS_DIR}/secrets.env.age#API_TOKEN' \
        PARAM_VAULT_ROLE='${CTX_ROLE}' PARAM_VAULT_ADDR='https://$VAULT_HOST:8200' PARAM_VAULT_NAMESPACE='team-$TEAM' \
        PARAM_AWS_REGION='${REGION}' PARAM_PUBLIC='API_TOKEN' PARAM_MAX_AGE='90d' \
        CTX_ROLE=ci-deploy VAULT_HOST=vault.example.com TEAM=a REGION=eu-west-1 SECRETS_DIR=ci \
        CIRCLE_OIDC_TOKEN_V2=job.token FAKE_CIRCLECI_LOG="$d/subst.log" STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] env subst: \$VAR and \${VAR} in parameters are expanded before stepsecret reads them" \
        has "role=ci-deploy addr=https://vault.example.com:8200 ns=team-a region=eu-west-1 public=API_TOKEN maxage=90d"
    check "[$sh_name] env subst: secrets expanded too (the age file was found), exit 0" test "$rc" -eq 0
    check "[$sh_name] env subst: command is not expanded by the orb (the shell's single quotes hold)" has 'literal=${CTX_ROLE}'
    check "[$sh_name] env subst: the stand-in circleci was asked, never for command" \
        "$py" -c 'import json, sys
calls = [json.loads(l) for l in open(sys.argv[1])]
substs = [c[2] for c in calls if c[:2] == ["env", "subst"] and len(c) > 2]
assert "${CTX_ROLE}" in substs, substs
assert not any("literal=" in s for s in substs), substs' "$d/subst.log"
    cur_path=$std_path
    run_orb install.sh PARAM_VERSION='$WANTED' PARAM_INSTALL_DIR='${HOME}/subst-bin' PARAM_DOWNLOAD_BASE_URL="$base/good" WANTED="$version"
    check "[$sh_name] env subst without a circleci CLI: install uses the values as written and says so" \
        test "$rc" -ne 0 -a "$(grep -c 'no circleci CLI here' <<<"$out")" -eq 1
    cur_path=$fakes/circleci:$std_path
    run_orb install.sh PARAM_VERSION='$WANTED' PARAM_INSTALL_DIR='${HOME}/subst-bin' PARAM_DOWNLOAD_BASE_URL="$base/good" WANTED="$version"
    check "[$sh_name] env subst: install expands version and install_dir" \
        test "$rc" -eq 0 -a -x "$home/subst-bin/stepsecret"

    # --- the command's shell
    cur_path=$inst:$std_path
    if [ "$sh_name" = busybox ]; then
        run_orb run.sh PARAM_COMMAND='echo "shell=$0"; false; echo not-reached' PARAM_SPEC=ci/stepsecret.toml \
            STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
        check "[$sh_name] shell default without bash: /bin/sh -e (stops at the first failure)" \
            test "$rc" -eq 1 -a "$(grep -c '^shell=/bin/sh$' <<<"$out")" -eq 1 -a "$(grep -c not-reached <<<"$out")" -eq 0
    else
        run_orb run.sh PARAM_COMMAND='[[ -n "$BASH_VERSION" ]] && echo "bash=yes"; false | true; echo not-reached' \
            PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
        check "[$sh_name] shell default where bash exists: bash -eo pipefail ([[ ]] works, a failing pipe stops it)" \
            test "$rc" -eq 1 -a "$(grep -c '^bash=yes$' <<<"$out")" -eq 1 -a "$(grep -c not-reached <<<"$out")" -eq 0
    fi
    run_orb run.sh PARAM_COMMAND='false | true; echo "piped-on shell=$0"' PARAM_SHELL='/bin/sh -e' \
        PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] shell parameter: /bin/sh -e as given" \
        test "$rc" -eq 0 -a "$(grep -c '^piped-on shell=/bin/sh$' <<<"$out")" -eq 1

    # --- files, audit_log
    run_orb run.sh PARAM_COMMAND='test -f "$API_FILE" && cat "$API_FILE"; echo; echo "path=$API_FILE"' \
        PARAM_FILES='# a comment
API_FILE=age://ci/secrets.env.age#API_TOKEN' PARAM_AUDIT_LOG="$d/audit.jsonl" \
        STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt"
    check "[$sh_name] files: NAME=REF lines become 0600 files, their content masked" \
        test "$rc" -eq 0 -a "$(grep -c '^\[masked:API_FILE\]$' <<<"$out")" -eq 1
    api_file=$(sed -n 's/^path=//p' <<<"$out")
    check "[$sh_name] files: ... removed when the command exits" test -n "$api_file" -a ! -e "$api_file"
    check "[$sh_name] audit_log: the run appended its record there" grep -q '"API_FILE"' "$d/audit.jsonl"

    # --- OIDC: no CIRCLE_OIDC_TOKEN_V2 but circleci run oidc get works: minted, 3 tries
    cur_path=$fakes/circleci:$inst:$std_path
    : >"$d/mint.log"
    rm -f "$d/mint.count"
    run_orb run.sh PARAM_COMMAND='echo "token=${STEPSECRET_OIDC_TOKEN-unset} v2=${CIRCLE_OIDC_TOKEN_V2-unset}"' \
        PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt" \
        FAKE_CIRCLECI_LOG="$d/mint.log" FAKE_OIDC_COUNTER="$d/mint.count" FAKE_OIDC_FAILS=2
    check "[$sh_name] OIDC: without CIRCLE_OIDC_TOKEN_V2, a default-audience token is minted (third try)" \
        test "$rc" -eq 0 -a "$(cat "$d/mint.count")" -eq 3 -a "$(grep -c '"run", "oidc", "get"\]$' "$d/mint.log")" -eq 3
    check "[$sh_name] OIDC: the minted token never reaches the command" \
        test "$(grep -c '^token=unset v2=unset$' <<<"$out")" -eq 1 -a "$(grep -c fake.oidc <<<"$out")" -eq 0
    rm -f "$d/mint.count"
    run_orb run.sh PARAM_COMMAND='echo ran' PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt" \
        FAKE_OIDC_COUNTER="$d/mint.count" FAKE_OIDC_FAILS=5
    check "[$sh_name] OIDC: gives up after 3 tries, and runs without a token" \
        test "$rc" -eq 0 -a "$(cat "$d/mint.count")" -eq 3 -a "$(grep -c '^ran$' <<<"$out")" -eq 1
    rm -f "$d/mint.count"
    run_orb run.sh PARAM_COMMAND='echo ran' PARAM_SPEC=ci/stepsecret.toml STEPSECRET_AGE_IDENTITY_FILE="$tmp/identity.txt" \
        FAKE_OIDC_COUNTER="$d/mint.count" CIRCLE_OIDC_TOKEN_V2=job.token
    check "[$sh_name] OIDC: with CIRCLE_OIDC_TOKEN_V2 nothing is minted" test "$rc" -eq 0 -a ! -e "$d/mint.count"

    # --- pinned digests: the orb's own version refuses a tampered binary whose served .sha256 agrees
    cur_path=$std_path
    run_orb "$pinned_install" PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/tampered-bin" PARAM_DOWNLOAD_BASE_URL="$base/tampered"
    check "[$sh_name] pinned: a tampered binary with a matching served .sha256 is refused" \
        test "$rc" -ne 0 -a "$(grep -c 'checksum mismatch' <<<"$out")" -eq 1 -a ! -e "$d/tampered-bin/stepsecret"
    check "[$sh_name] pinned: ... nothing left in TMPDIR" test -z "$(ls -A "$tmpdir")"
    run_orb "$pinned_install" PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/pinned-bin" PARAM_DOWNLOAD_BASE_URL="$base/nosum"
    check "[$sh_name] pinned: the genuine binary installs without asking for a .sha256, no warning" \
        test "$rc" -eq 0 -a -x "$d/pinned-bin/stepsecret" -a "$(grep -c warning <<<"$out")" -eq 0
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/sha-bin" PARAM_DOWNLOAD_BASE_URL="$base/tampered" \
        PARAM_SHA256="$(cut -d' ' -f1 "$www/good/$asset.sha256")"
    check "[$sh_name] sha256 parameter: a download that does not match it is refused" \
        test "$rc" -ne 0 -a ! -e "$d/sha-bin/stepsecret"
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/sha-bin" PARAM_DOWNLOAD_BASE_URL="$base/nosum" \
        PARAM_SHA256="$(cut -d' ' -f1 "$www/good/$asset.sha256" | tr a-f A-F)"
    check "[$sh_name] sha256 parameter: a matching download installs (no .sha256 needed)" \
        test "$rc" -eq 0 -a -x "$d/sha-bin/stepsecret"
    run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/warn-bin" PARAM_DOWNLOAD_BASE_URL="$base/good"
    check "[$sh_name] no pin for the version and no sha256: the served checksum, with a warning" \
        test "$rc" -eq 0 -a "$(grep -c 'warning: no pinned digest' <<<"$out")" -eq 1
    if [ "$sh_name" != busybox ]; then
        for os in darwin:macOS windows:Windows; do
            cur_path=$fakes/${os%%:*}:$std_path
            run_orb install.sh PARAM_VERSION="$version" PARAM_INSTALL_DIR="$d/os-bin" PARAM_DOWNLOAD_BASE_URL="$base/good"
            check "[$sh_name] a ${os#*:} executor gets a clear error" \
                test "$rc" -ne 0 -a "$(grep -c "${os#*:} executors are not supported" <<<"$out")" -eq 1
        done
        cur_path=$std_path
    fi

    check "[$sh_name] BASH_ENV is byte-identical after every install and run" cmp "$d/bash_env.before" "$bash_env"
    check "[$sh_name] the value is in no file the steps left (home, tmp, BASH_ENV, project)" \
        bash -c '! grep -rqF -- "$1" "$2" "$3"' _ "$value" "$d" "$proj"
done

# ---------------------------------------------------------------- 6. Vault through the orb
section "Vault via the orb"
# OpenBao in dev mode on loopback, JWT auth trusting a local RSA key, and a CircleCI-shaped
# token signed with it as CIRCLE_OIDC_TOKEN_V2: run.sh logs in with vault_role and
# vault_auth_path, as a CircleCI job with a context would.
vault_oidc_e2e() {
    local bao vd vault_pw oidc
    if ! bao=$(bash "$repo/scripts/deps/vault.sh" 2>/dev/null); then
        bad "vault OIDC e2e: scripts/deps/vault.sh could not install OpenBao"
        return
    fi
    # shellcheck source=scripts/lib/openbao.sh
    . "$repo/scripts/lib/openbao.sh"
    vd=$tmp/vault
    mkdir -p "$vd/home" "$vd/tmp"
    bao_start "$bao" "$vd" || { bad "vault OIDC e2e: OpenBao did not start"; return; }
    vault_pw="orb-vault-pw-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    bao_api POST secret/data/deploy "{\"data\":{\"password\":\"$vault_pw\"}}"
    bao_api POST sys/auth/circleci '{"type":"jwt"}'
    jwt_setup "$vd" 2>/dev/null || true
    # jwt_setup configures auth/jwt; configure the custom mount the same way.
    bao_api POST auth/circleci/config "{\"jwt_validation_pubkeys\":[$(openssl pkey -in "$vd/jwt-key.pem" -pubout | "$py" -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]}"
    bao_api PUT sys/policies/acl/deploy '{"policy":"path \"secret/data/deploy\" { capabilities = [\"read\"] }"}'
    bao_api POST auth/circleci/role/ci-deploy '{"role_type":"jwt","user_claim":"sub","bound_audiences":["org-1"],"bound_claims":{"oidc.circleci.com/project-id":"proj-1"},"token_policies":["deploy"],"token_ttl":"5m"}'
    oidc=$(jwt_sign "$vd" '{"iss":"https://oidc.circleci.com/org/org-1","aud":"org-1","sub":"org/org-1/project/proj-1/user/u-1","oidc.circleci.com/project-id":"proj-1"}')
    home=$vd/home tmpdir=$vd/tmp bash_env=$vd/bash_env cwd=$proj
    printf 'export EXISTING_SETTING="from an earlier step"\n' >"$bash_env"
    cp "$bash_env" "$vd/bash_env.before"
    cur_shell=("$(command -v dash)" -e)
    cur_path=$tmp/dash/bin:$PATH
    run_orb run.sh PARAM_COMMAND='echo "pw=$DB_PASSWORD"; env | grep -c "^CIRCLE_OIDC_TOKEN_V2=" || true' \
        PARAM_SECRETS="DB_PASSWORD=vault://secret/deploy#password" \
        PARAM_VAULT_ROLE=ci-deploy PARAM_VAULT_AUTH_PATH=circleci \
        VAULT_ADDR="$VAULT_ADDR" CIRCLECI=true CIRCLE_OIDC_TOKEN_V2="$oidc"
    check "vault OIDC e2e: run.sh logs in with vault_role/vault_auth_path and the job's OIDC token" \
        test "$rc" -eq 0
    check "vault OIDC e2e: the command saw the secret, masked, and not the OIDC token" \
        has "pw=[masked:DB_PASSWORD]"
    check "vault OIDC e2e: ... the OIDC token variable was kept from the command" \
        test "$(grep -c '^0$' <<<"$out")" -eq 1
    check "vault OIDC e2e: no value or token in the output" \
        bash -c '! grep -qF -e "$1" -e "$2" <<<"$3"' _ "$vault_pw" "$oidc" "$out"
    check "vault OIDC e2e: BASH_ENV unchanged" cmp "$vd/bash_env.before" "$bash_env"
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/        | /'
    # No CIRCLE_OIDC_TOKEN_V2 in the job: run.sh mints one with (a stand-in) circleci run oidc get.
    cur_path=$fakes/circleci:$tmp/dash/bin:$PATH
    run_orb run.sh PARAM_COMMAND='echo "pw=$DB_PASSWORD"; env | grep -c -e "^STEPSECRET_OIDC_TOKEN=" -e "^CIRCLE_OIDC_TOKEN" || true' \
        PARAM_SECRETS="DB_PASSWORD=vault://secret/deploy#password" \
        PARAM_VAULT_ROLE=ci-deploy PARAM_VAULT_AUTH_PATH=circleci PARAM_VAULT_ADDR='$BAO_ADDR' \
        BAO_ADDR="$VAULT_ADDR" CIRCLECI=true FAKE_OIDC_TOKEN="$oidc"
    check "vault OIDC e2e: without CIRCLE_OIDC_TOKEN_V2, the minted token logs in (vault_addr expanded by env subst)" \
        test "$rc" -eq 0 -a "$(grep -c '^pw=\[masked:DB_PASSWORD\]$' <<<"$out")" -eq 1
    check "vault OIDC e2e: ... and no OIDC token variable reached the command" test "$(grep -c '^0$' <<<"$out")" -eq 1
    check "vault OIDC e2e: ... nor the output or BASH_ENV" \
        bash -c '! grep -qF -e "$1" -e "$2" <<<"$3" && ! grep -qF "$2" "$4"' _ "$vault_pw" "$oidc" "$out" "$bash_env"
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/        | /'
    kill "$BAO_PID" 2>/dev/null
}
vault_oidc_e2e

# ---------------------------------------------------------------- summary
printf '\n'
printf 'test-orb.sh took %ss\n' "$(($(date +%s) - started))"
check_summary
