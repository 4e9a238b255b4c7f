#!/bin/sh
# stepsecret/run: run ONE command with its secrets, in this step only. POSIX sh.
#
# Every setting is exported in this script's own process, which then becomes stepsecret
# (exec): nothing is written to $BASH_ENV, so no later step sees a setting, a token or a value.
#
# Parameters (environment). Each string but PARAM_COMMAND goes through `circleci env subst`
# first, so `${VAULT_ROLE}` from a context or project variable is expanded; without the
# circleci CLI they are used as written (a note says so).
#   PARAM_COMMAND          the command, run as SHELL -c "$PARAM_COMMAND" (required; never expanded here)
#   PARAM_SHELL            the shell; empty: /bin/bash -eo pipefail when bash exists, else /bin/sh -e
#   PARAM_SPEC             -> STEPSECRET_SPEC
#   PARAM_SECRETS          -> STEPSECRET_SECRETS (NAME=REF lines)
#   PARAM_FILES            NAME=REF lines -> --file NAME=REF (a 0600 file; NAME holds its path)
#   PARAM_PUBLIC           names not to mask -> STEPSECRET_PUBLIC
#   PARAM_VAULT_ADDR       -> VAULT_ADDR
#   PARAM_VAULT_NAMESPACE  -> VAULT_NAMESPACE
#   PARAM_VAULT_ROLE       -> STEPSECRET_VAULT_ROLE
#   PARAM_VAULT_AUTH_PATH  -> STEPSECRET_VAULT_AUTH_PATH
#   PARAM_AWS_ROLE_ARN     -> AWS_ROLE_ARN
#   PARAM_AWS_REGION       -> AWS_REGION
#   PARAM_AUDIT_LOG        -> STEPSECRET_AUDIT_LOG
#   PARAM_MAX_AGE          -> STEPSECRET_MAX_AGE
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

# circleci env subst, as CircleCI's own orbs expand their parameters.
if command -v circleci >/dev/null 2>&1 && circleci env subst probe >/dev/null 2>&1; then
    subst() { circleci env subst "$1"; }
else
    # shellcheck disable=SC2016 # a literal $VARIABLES
    printf 'stepsecret/run: note: no circleci CLI here: parameters are used as written, without expanding $VARIABLES\n' >&2
    subst() { printf '%s' "$1"; }
fi
for name in SHELL SPEC SECRETS FILES PUBLIC VAULT_ADDR VAULT_NAMESPACE VAULT_ROLE VAULT_AUTH_PATH \
    AWS_ROLE_ARN AWS_REGION AUDIT_LOG MAX_AGE OIDC_AUDIENCE REDACT INSTALL_DIR; do
    eval "value=\${PARAM_$name:-}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ -n "$value" ]; then
        value=$(subst "$value") || fail "circleci env subst failed on the $name parameter"
        eval "PARAM_$name=\$value"
    fi
done

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

# export_if VARIABLE VALUE: sets and exports VARIABLE only when VALUE is not empty.
export_if() {
    if [ -n "$2" ]; then
        eval "$1=\$2"
        export "${1?}"
    fi
}
export_if STEPSECRET_SPEC "${PARAM_SPEC:-}"
export_if STEPSECRET_SECRETS "${PARAM_SECRETS:-}"
export_if STEPSECRET_PUBLIC "${PARAM_PUBLIC:-}"
export_if VAULT_ADDR "${PARAM_VAULT_ADDR:-}"
export_if VAULT_NAMESPACE "${PARAM_VAULT_NAMESPACE:-}"
export_if STEPSECRET_VAULT_ROLE "${PARAM_VAULT_ROLE:-}"
export_if STEPSECRET_VAULT_AUTH_PATH "${PARAM_VAULT_AUTH_PATH:-}"
export_if AWS_ROLE_ARN "${PARAM_AWS_ROLE_ARN:-}"
export_if AWS_REGION "${PARAM_AWS_REGION:-}"
export_if STEPSECRET_AUDIT_LOG "${PARAM_AUDIT_LOG:-}"
export_if STEPSECRET_MAX_AGE "${PARAM_MAX_AGE:-}"

# mint CLAIMS...: circleci run oidc get, 3 tries; the token goes to STEPSECRET_OIDC_TOKEN in
# this process only (it becomes stepsecret below).
mint() {
    command -v circleci >/dev/null 2>&1 || return 2
    tries=0
    while [ "$tries" -lt 3 ]; do
        tries=$((tries + 1))
        if token=$(circleci run oidc get "$@" 2>/dev/null) && [ -n "$token" ]; then
            STEPSECRET_OIDC_TOKEN=$token
            export STEPSECRET_OIDC_TOKEN
            unset token
            minted=1
            return 0
        fi
        [ "$tries" -lt 3 ] && sleep "$tries"
    done
    unset token
    return 1
}

if [ -n "${PARAM_OIDC_AUDIENCE:-}" ]; then
    command -v circleci >/dev/null 2>&1 \
        || fail "oidc_audience needs the circleci CLI of a CircleCI job (circleci run oidc get)" 69
    # The audience as a JSON string: backslashes and double quotes escaped.
    aud=$(printf '%s' "$PARAM_OIDC_AUDIENCE" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    mint --claims "{\"aud\":\"$aud\"}" \
        || fail "could not mint an OIDC token for the audience $PARAM_OIDC_AUDIENCE (3 tries)" 77
elif [ -z "${CIRCLE_OIDC_TOKEN_V2:-}" ] && command -v circleci >/dev/null 2>&1; then
    # No token in the job (e.g. no context): mint the default-audience one when the CLI can.
    if mint; then
        printf 'stepsecret/run: note: CIRCLE_OIDC_TOKEN_V2 is not set; minted a default-audience token with circleci run oidc get\n' >&2
    fi
fi

case ${PARAM_REDACT:-true} in
    false | False | FALSE | 0 | no) set -- --no-redact ;;
    true | True | TRUE | 1 | yes | "") set -- ;;
    *) fail "redact must be true or false, not ${PARAM_REDACT}" ;;
esac

# files: one NAME=REF per line, each a --file argument.
if [ -n "${PARAM_FILES:-}" ]; then
    newline='
'
    rest=$PARAM_FILES$newline
    while [ -n "$rest" ]; do
        line=${rest%%"$newline"*}
        rest=${rest#*"$newline"}
        line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
        case $line in
            "" | "#"*) continue ;;
            *=*) set -- "$@" --file "$line" ;;
            *) fail "files: '$line' is not NAME=REF" ;;
        esac
    done
fi

# The command's shell, like CircleCI's own run step: bash -eo pipefail where bash exists.
shell=${PARAM_SHELL:-}
if [ -z "$shell" ]; then
    if command -v bash >/dev/null 2>&1; then
        shell="$(command -v bash) -eo pipefail"
    else
        shell="/bin/sh -e"
    fi
fi
if [ -n "$minted" ]; then
    # The token minted here is for stepsecret alone; stepsecret passes on one that it did
    # not log in with (only age:// references), so a small sh drops it before the shell starts.
    # shellcheck disable=SC2016,SC2086 # "$@" is that sh's; the shell's words split on purpose
    exec "$bin" run "$@" -- /bin/sh -c 'unset STEPSECRET_OIDC_TOKEN; exec "$@"' sh $shell -c "$PARAM_COMMAND"
fi
# shellcheck disable=SC2086 # the shell's words (e.g. /bin/bash -eo pipefail) split on purpose
exec "$bin" run "$@" -- $shell -c "$PARAM_COMMAND"
