# shellcheck shell=bash
# Shared by the test scripts that print one line per check (test-orb.sh, test-pipe.sh,
# test-aarch64.sh): the counters, ok/bad/skip, `check`, and the closing summary. Source it; it
# defines functions and the counters only. CHECK_INDENT (set before or after sourcing) prefixes
# every line, e.g. under a section heading.

passed=0 failed=0 skipped=0
CHECK_INDENT=${CHECK_INDENT:-}

ok() { passed=$((passed + 1)); printf '%sok    %s\n' "$CHECK_INDENT" "$*"; }
bad() { failed=$((failed + 1)); printf '%sFAIL  %s\n' "$CHECK_INDENT" "$*"; }
skip() { skipped=$((skipped + 1)); printf '%sSKIP  %s\n' "$CHECK_INDENT" "$*"; }

# check DESCRIPTION CMD...: CMD's success is the check; the end of its output is shown on
# failure.
check() {
    local what=$1 log
    shift
    log=$(mktemp "${TMPDIR:-/tmp}/stepsecret-check.XXXXXX")
    if "$@" >"$log" 2>&1; then
        ok "$what"
    else
        bad "$what"
        sed "s/^/$CHECK_INDENT      | /" "$log" | tail -n 25
    fi
    rm -f "$log"
}

# check_summary: the skips, then "N passed, M failed"; fails when a check did.
check_summary() {
    if [ "$skipped" -gt 0 ]; then printf '%s skipped (see SKIP lines above)\n' "$skipped"; fi
    printf '%s passed, %s failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ]
}
