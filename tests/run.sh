#!/bin/sh
# Runs every test suite and prints one whole-run total as its last line:
#   N passed, N failed
#
# A suite is a folder under tests/ (support/ and bench/ excepted) holding
#   *_spec.lua  busted specs, run inside the real host (build/bin/sesh), or
#   run.sh      any other runner; its own last "N passed, N failed[, N skipped]"
#               line counts.
# `sh tests/run.sh pool sessions` runs only the named suites.
set -u
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SESH="$BUILD/bin/sesh"
BUSTED=${BUSTED:-/usr/bin/busted}

# Tests never touch the user's own pool, history or Azure settings.
TEST_HOME=$(mktemp -d "${TMPDIR:-/tmp}/sesh-test.XXXXXX")
trap 'rm -rf "$TEST_HOME"' EXIT INT TERM
# Traversable (not listable) so suites can also run parts as an unprivileged user.
chmod 711 "$TEST_HOME"
export XDG_RUNTIME_DIR="$TEST_HOME/run" XDG_STATE_HOME="$TEST_HOME/state"
export XDG_CACHE_HOME="$TEST_HOME/cache" SESH_TEST_TMP="$TEST_HOME"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset POOL_MANAGEMENT_ENDPOINT AZURE_TENANT_ID AZURE_CLIENT_ID AZURE_CLIENT_SECRET \
      AZURE_FEDERATED_TOKEN_FILE IDENTITY_ENDPOINT IDENTITY_HEADER OPENAI_API_KEY \
      LUA_INIT LUA_INIT_5_4 SSL_CERT_FILE CURL_CA_BUNDLE SESH_TOKEN SESH_TOKEN_FILE \
      SESH_POOL_ARGS SESH_LOG
export SESH_BUILD="$BUILD"
# No test may ever reach the real instance metadata address.
export SESH_IMDS_ENDPOINT=off

passed=0 failed=0 skipped=0

count_tap() {   # stdin: busted TAP output; prints "passed failed skipped"
    awk '/^ok .*# SKIP/ {s++; next} /^ok / {p++} /^not ok / {f++}
         END {printf "%d %d %d\n", p, f, s}'
}

run_suite() {
    dir=$1 name=$(basename "$1")
    log="$TEST_HOME/$name.log"
    echo "== $name"
    if [ -x "$dir/run.sh" ] || [ -f "$dir/run.sh" ]; then
        sh "$dir/run.sh" >"$log" 2>&1
        rc=$?
        line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
        f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
        s=$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
        [ -z "$line" ] && f=1   # a runner that reports nothing has failed
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    else
        "$SESH" "$BUSTED" -o TAP -m 'tests/?.lua;tests/?/init.lua' "$dir" >"$log" 2>&1
        rc=$?
        set -- $(count_tap <"$log")
        p=$1 f=$2 s=$3
        # busted exits non-zero on errors outside any test (a spec that fails to load)
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    fi
    if [ "$f" -ne 0 ] || [ "${SESH_TEST_VERBOSE:-}" ]; then
        cat "$log"
    else
        grep -E '^(not ok|ok)' "$log" | sed 's/^/   /'
    fi
    echo "   $name: $p passed, $f failed, $s skipped"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

if [ "$#" -gt 0 ]; then
    for s in "$@"; do run_suite "tests/$s"; done
else
    for d in tests/*/; do
        d=${d%/}
        case $(basename "$d") in support|bench) continue ;; esac
        [ -f "$d/run.sh" ] || ls "$d"/*_spec.lua >/dev/null 2>&1 || continue
        run_suite "$d"
    done
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
