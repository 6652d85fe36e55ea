#!/bin/sh
# The sandbox suite: builds tests/sandbox/driver.c against the pool's own
# sandbox objects and runs it (real bwrap, seccomp and Python), once with
# bwrap starting every sandbox and once with a fork server forking them
# (SESH_SANDBOX_FORK=1). As root each runs twice: as root (sandboxes drop to
# a uid of their own) and as an unprivileged user (sandboxes in a user
# namespace of that user). Then the security specs (*_spec.lua) run through
# a real sesh-pool over HTTP, forked by its fork server, then once more with
# --no-fork-server (bwrap); as root, both again with a pool run by an
# unprivileged user.
# Prints "N passed, N failed". `sh tests/sandbox/run.sh FILTER` runs a subset
# of the driver only.
set -u
cd "$(dirname "$0")/../.."
BUILD=${SESH_BUILD:-${BUILD:-build}}
OBJ="$BUILD/obj/pool"
OBJS="$OBJ/sandbox.o $OBJ/sandbox_spawn.o $OBJ/sandbox_disk.o $OBJ/cgroup.o $OBJ/seccomp.o $OBJ/runner_py.o
      $OBJ/json_scan.o $OBJ/util.o $OBJ/zygote.o $OBJ/zygote_enter_so.o $OBJ/sandbox_oom_so.o $OBJ/log.o $OBJ/datadir.o
      $OBJ/files.o $(ls "$BUILD"/obj/common/*.o)"
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

. tests/support/tally.sh

mkdir -p "$WORK/root"
for fork in "" 1; do
    how=${fork:+", forked by a fork server"}
    run "as $(id -un)$how" env SESH_TEST_TMP="$WORK/root" SESH_SANDBOX_FORK="$fork" "$DRIVER" "$@"
    if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
        mkdir -p "$WORK/user" && chown 65534:65534 "$WORK/user"
        run "as an unprivileged user$how" env SESH_TEST_TMP="$WORK/user" SESH_SANDBOX_FORK="$fork" \
            setpriv --reuid=65534 --regid=65534 --clear-groups "$DRIVER" "$@"
    fi
done
# The security suite through a real pool over HTTP (busted specs).
if [ $# -eq 0 ]; then
    if make --no-print-directory -s "$BUILD/bin/sesh" "$BUILD/bin/sesh-pool" >&2; then
        # support/pool.lua adds SESH_POOL_ARGS to every pool a spec starts, and
        # runs it as SESH_POOL_USER (a pool that is not root) when set
        users=""
        [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && users=65534
        for user in "" $users; do
            for args in "" --no-fork-server; do
                run_tap "specs through the pool${user:+ run by uid $user}${args:+ ($args)}" \
                    env SESH_TEST_TMP="$WORK/root" SESH_POOL_ARGS="$args" SESH_POOL_USER="$user" \
                    "$BUILD/bin/sesh" /usr/bin/busted -o TAP -m 'tests/?.lua;tests/?/init.lua' tests/sandbox
            done
        done
    else
        failed=$((failed + 1))
    fi
fi
total
