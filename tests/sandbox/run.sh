#!/bin/sh
# The sandbox suite: builds tests/sandbox/driver.c against the pool's own
# sandbox objects and runs it (real bwrap, seccomp and Python). As root it
# runs twice: as root (sandboxes drop to a uid of their own) and as an
# unprivileged user (sandboxes in a user namespace of that user).
# Then the security specs (*_spec.lua) run through a real sesh-pool over HTTP.
# Prints "N passed, N failed". `sh tests/sandbox/run.sh FILTER` runs a subset
# of the driver only.
set -u
cd "$(dirname "$0")/../.."
BUILD=${SESH_BUILD:-${BUILD:-build}}
OBJ="$BUILD/obj/pool"
OBJS="$OBJ/sandbox.o $OBJ/sandbox_spawn.o $OBJ/sandbox_disk.o $OBJ/cgroup.o $OBJ/seccomp.o $OBJ/runner_py.o
      $OBJ/json_scan.o $OBJ/util.o $(ls "$BUILD"/obj/common/*.o)"
make --no-print-directory -s $OBJS >&2 ||
    { echo "0 passed, 1 failed"; exit 1; }
WORK=$(mktemp -d "${SESH_TEST_TMP:-${TMPDIR:-/tmp}}/sandbox-suite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
chmod 755 "$WORK"
DRIVER="$WORK/driver"
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -g -Ihost ${SANITIZE:-} \
    -o "$DRIVER" tests/sandbox/driver.c $OBJS \
    $(pkg-config --libs jansson libseccomp) -lpthread ||
    { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0
run() {     # label, then the command
    label=$1; shift
    echo "== $label"
    "$@" >"$WORK/out" 2>&1
    rc=$?
    cat "$WORK/out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$WORK/out" | tail -n 1)
    p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3)
    [ -z "$line" ] && p=0 f=1
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)) failed=$((failed + f))
}

mkdir -p "$WORK/root"
run "as $(id -un)" env SESH_TEST_TMP="$WORK/root" "$DRIVER" "$@"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    mkdir -p "$WORK/user" && chown 65534:65534 "$WORK/user"
    run "as an unprivileged user" env SESH_TEST_TMP="$WORK/user" \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$DRIVER" "$@"
fi
# The security suite through a real pool over HTTP (busted specs).
if [ $# -eq 0 ]; then
    echo "== specs through the pool"
    if make --no-print-directory -s "$BUILD/bin/sesh" "$BUILD/bin/sesh-pool" >&2; then
        SESH_TEST_TMP="$WORK/root" "$BUILD/bin/sesh" /usr/bin/busted -o TAP \
            -m 'tests/?.lua;tests/?/init.lua' tests/sandbox >"$WORK/out" 2>&1
        rc=$?
        cat "$WORK/out"
        p=$(grep -c '^ok ' "$WORK/out"); f=$(grep -c '^not ok ' "$WORK/out")
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
        passed=$((passed + p)) failed=$((failed + f))
    else
        failed=$((failed + 1))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
