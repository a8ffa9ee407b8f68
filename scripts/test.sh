#!/usr/bin/env bash
# Runs every flashgate test suite (unit, integration against real
# redis-server/PostgreSQL/gateway/worker, browser tests in Chromium, fuzz
# corpus replay): scripts/setup.sh installs what is missing, then build/ is
# configured with -Dwerror_build=true, built, and `meson test` runs all suites.
#
#   scripts/test.sh              the normal build
#   scripts/test.sh --sanitize   also build-asan (address,undefined; gcc) and
#                                build-tsan (thread; clang), all suites in each
#   scripts/test.sh -- ARGS...   extra arguments for `meson test` (e.g. a suite)
#
# FLASHGATE_BUILD_DIR changes the build directory name (default build; the
# sanitizer builds are <dir>-asan and <dir>-tsan).  Exits non-zero if any
# build or test fails, and ends with one line "tests: N passed, N failed, N
# skipped" over every run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf 'test.sh: %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

sanitize=
meson_test_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --sanitize) sanitize=1 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; meson_test_args=("$@"); break ;;
        *) say "unknown option: $1"; usage >&2; exit 2 ;;
    esac
    shift
done

"$root/scripts/setup.sh"

# Servers under test hold many sockets; take the whole allowance.
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=$(cat /proc/sys/fs/nr_open)
ulimit -n "$nofile"

# Everything the fixtures create goes here; removed when all tests pass.
# Mode 711: PostgreSQL runs as user postgres when the tests run as root.
FLASHGATE_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/flashgate-test.XXXXXX")
chmod 711 "$FLASHGATE_TEST_TMP"
export FLASHGATE_TEST_TMP
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export LC_ALL=C.UTF-8

base=${FLASHGATE_BUILD_DIR:-build}
total_pass=0 total_fail=0 total_skip=0
failed_runs=()

# configure DIR CC OPTIONS...: meson setup once; again (--reconfigure, or
# --wipe when the compiler changes) only when the options differ from the
# last run's, so a second run is quick.
configure() {
    local dir=$1 cc=$2
    shift 2
    local want stamp=$dir/.flashgate-test-options
    want="CC=$cc $*"
    if [[ -f $dir/build.ninja && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    local mode=()
    if [[ -f $dir/build.ninja ]]; then
        # A directory configured by hand (no stamp) keeps its compiler.
        if [[ -f $stamp && $(cut -d' ' -f1 "$stamp") != "CC=$cc" ]]; then
            mode=(--wipe)
        else
            mode=(--reconfigure)
        fi
    fi
    say "configuring $dir ($want)"
    CC=$cc meson setup "${mode[@]}" "$dir" "$@" >"$FLASHGATE_TEST_TMP/meson-setup.log" 2>&1 || {
        cat "$FLASHGATE_TEST_TMP/meson-setup.log" >&2
        return 1
    }
    printf '%s\n' "$want" >"$stamp"
}

# count DIR: add the results of DIR's last `meson test` to the totals.
count() {
    local log=$1/meson-logs/testlog.json
    [[ -f $log ]] || return 0
    local ok bad skip
    ok=$(grep -cE '"result": "(OK|EXPECTEDFAIL)"' "$log" || true)
    bad=$(grep -cE '"result": "(FAIL|UNEXPECTEDPASS|TIMEOUT|ERROR)"' "$log" || true)
    skip=$(grep -cE '"result": "SKIP"' "$log" || true)
    total_pass=$((total_pass + ok))
    total_fail=$((total_fail + bad))
    total_skip=$((total_skip + skip))
    say "$1: $ok passed, $bad failed, $skip skipped"
}

# run NAME DIR CC TIMEOUT_MULTIPLIER MESON_OPTIONS...
run() {
    local name=$1 dir=$2 cc=$3 mult=$4
    shift 4
    local start=$SECONDS
    say "== $name: $dir"
    rm -f "$dir/meson-logs/testlog.json"
    if ! configure "$dir" "$cc" "$@"; then
        say "$name: meson setup failed"
        failed_runs+=("$name (configure)")
        total_fail=$((total_fail + 1))
        return 0
    fi
    if ! ninja -C "$dir"; then
        say "$name: build failed"
        failed_runs+=("$name (build)")
        total_fail=$((total_fail + 1))
        return 0
    fi
    local rc=0
    CK_TIMEOUT_MULTIPLIER=$mult meson test -C "$dir" --print-errorlogs \
        --timeout-multiplier "$mult" "${meson_test_args[@]}" || rc=$?
    count "$dir"
    ((rc == 0)) || failed_runs+=("$name")
    say "$name took $((SECONDS - start))s"
}

run default "$base" "${CC:-cc}" 1 -Dwerror_build=true

if [[ -n $sanitize ]]; then
    # Sanitizer reports are failures; children started by the fixtures
    # inherit these settings.
    export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=4
    run asan "$base-asan" "${CC:-cc}" 3 \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
    run tsan "$base-tsan" clang 4 \
        -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized
fi

if ((${#failed_runs[@]})); then
    say "FAILED: ${failed_runs[*]} (fixture logs kept in $FLASHGATE_TEST_TMP)"
    rc=1
else
    rm -rf "$FLASHGATE_TEST_TMP"
    rc=0
fi
printf 'tests: %d passed, %d failed, %d skipped\n' "$total_pass" "$total_fail" "$total_skip"
exit "$rc"
