#!/bin/sh
# stepsecret/run: run ONE command with its secrets, in this step only. POSIX sh.
#
# Every setting is exported in this script's own process, which then becomes stepsecret
# (exec): nothing is written to $BASH_ENV, so no later step sees a setting, a token or a value.
#
# Parameters (environment):
#   PARAM_COMMAND          the command, run as sh -c "$PARAM_COMMAND" (required)
#   PARAM_SPEC             -> STEPSECRET_SPEC
#   PARAM_SECRETS          -> STEPSECRET_SECRETS (NAME=REF lines)
#   PARAM_VAULT_ROLE       -> STEPSECRET_VAULT_ROLE
#   PARAM_VAULT_AUTH_PATH  -> STEPSECRET_VAULT_AUTH_PATH
#   PARAM_AWS_ROLE_ARN     -> AWS_ROLE_ARN
#   PARAM_OIDC_AUDIENCE    mint a token with that audience -> STEPSECRET_OIDC_TOKEN
#   PARAM_REDACT           false -> --no-redact
#   PARAM_INSTALL_DIR      where stepsecret is when not on PATH
set -eu
minted=""

# fail MESSAGE [EXIT_CODE]: the code defaults to 64 (usage), as stepsecret's own.
fail() {
    printf 'stepsecret/run: error: %s\n' "$1" >&2
    exit "${2:-64}"
}

[ -n "${PARAM_COMMAND:-}" ] || fail "the command parameter is empty"

bin=""
install_dir=${PARAM_INSTALL_DIR:-}
# shellcheck disable=SC2088 # a literal "~" from the parameter, expanded here
case $install_dir in
    "~") install_dir=$HOME ;;
    "~/"*) install_dir=$HOME/${install_dir#"~/"} ;;
esac
if [ -n "$install_dir" ] && [ -x "$install_dir/stepsecret" ]; then
    bin=$install_dir/stepsecret
elif command -v stepsecret >/dev/null 2>&1; then
    bin=$(command -v stepsecret)
else
    fail "stepsecret is not installed${install_dir:+ in $install_dir} or on PATH: add the stepsecret/install step first" 127
fi

if [ -n "${PARAM_SPEC:-}" ]; then
    STEPSECRET_SPEC=$PARAM_SPEC
    export STEPSECRET_SPEC
fi
if [ -n "${PARAM_SECRETS:-}" ]; then
    STEPSECRET_SECRETS=$PARAM_SECRETS
    export STEPSECRET_SECRETS
fi
if [ -n "${PARAM_VAULT_ROLE:-}" ]; then
    STEPSECRET_VAULT_ROLE=$PARAM_VAULT_ROLE
    export STEPSECRET_VAULT_ROLE
fi
if [ -n "${PARAM_VAULT_AUTH_PATH:-}" ]; then
    STEPSECRET_VAULT_AUTH_PATH=$PARAM_VAULT_AUTH_PATH
    export STEPSECRET_VAULT_AUTH_PATH
fi
if [ -n "${PARAM_AWS_ROLE_ARN:-}" ]; then
    AWS_ROLE_ARN=$PARAM_AWS_ROLE_ARN
    export AWS_ROLE_ARN
fi

if [ -n "${PARAM_OIDC_AUDIENCE:-}" ]; then
    command -v circleci >/dev/null 2>&1 \
        || fail "oidc_audience needs the circleci CLI of a CircleCI job (circleci run oidc get)" 69
    # The audience as a JSON string: backslashes and double quotes escaped.
    aud=$(printf '%s' "$PARAM_OIDC_AUDIENCE" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    token=$(circleci run oidc get --claims "{\"aud\":\"$aud\"}") \
        || fail "could not mint an OIDC token for the audience $PARAM_OIDC_AUDIENCE" 77
    [ -n "$token" ] || fail "circleci run oidc get returned no token" 77
    # Only stepsecret's environment (this process, exec'd below); it does not pass it on.
    STEPSECRET_OIDC_TOKEN=$token
    export STEPSECRET_OIDC_TOKEN
    unset token
    minted=1
fi

case ${PARAM_REDACT:-true} in
    false | False | FALSE | 0 | no) set -- --no-redact ;;
    true | True | TRUE | 1 | yes | "") set -- ;;
    *) fail "redact must be true or false, not ${PARAM_REDACT}" ;;
esac

if [ -n "$minted" ]; then
    # The token minted here is for stepsecret alone; stepsecret passes on one that it did
    # not log in with (only age:// references), so the command's shell drops it first.
    # shellcheck disable=SC2016 # $1 is expanded by that shell
    exec "$bin" run "$@" -- sh -c 'unset STEPSECRET_OIDC_TOKEN; exec sh -c "$1"' sh "$PARAM_COMMAND"
fi
exec "$bin" run "$@" -- sh -c "$PARAM_COMMAND"
