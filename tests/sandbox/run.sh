#!/bin/sh
# The sandbox suite: builds tests/sandbox/driver.c against the pool's own
# sandbox objects and runs it (real bwrap, seccomp and Python).
# Prints "N passed, N failed". `sh tests/sandbox/run.sh FILTER` runs a subset.
set -u
cd "$(dirname "$0")/../.."
BUILD=${SESH_BUILD:-${BUILD:-build}}
OBJ="$BUILD/obj/pool"
make --no-print-directory -s "$OBJ/sandbox.o" "$OBJ/seccomp.o" "$OBJ/runner_py.o" >&2 ||
    { echo "0 passed, 1 failed"; exit 1; }
BIN="$BUILD/tests"
mkdir -p "$BIN"
${CC:-cc} -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -g -Ihost ${SANITIZE:-} \
    -o "$BIN/sandbox-driver" tests/sandbox/driver.c \
    "$OBJ/sandbox.o" "$OBJ/seccomp.o" "$OBJ/runner_py.o" \
    $(pkg-config --libs jansson libseccomp) -lpthread ||
    { echo "0 passed, 1 failed"; exit 1; }
exec "$BIN/sandbox-driver" "$@"
