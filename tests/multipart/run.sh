#!/bin/sh
# The multipart suite: host/pool/multipart.c tested on its own, without a
# server. gen_bodies.py makes bodies with real clients (requests, httpx,
# aiohttp; Semantic Kernel's JSON-typed one); driver.c parses them, hand-made
# and hostile ones, at every split, and fuzzes. It runs built with
# AddressSanitizer and UndefinedBehaviorSanitizer, then under valgrind (a
# shorter fuzz). Prints "N passed, N failed". `sh tests/multipart/run.sh
# FILTER` runs a subset.
set -u
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d "${SESH_TEST_TMP:-${TMPDIR:-/tmp}}/multipart-suite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
SRC="tests/multipart/driver.c host/pool/multipart.c host/pool/util.c host/common/*.c"
FLAGS="-std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -g -Ihost"

if ! /usr/bin/python3 tests/multipart/gen_bodies.py "$WORK/cases"; then
    echo "0 passed, 1 failed (python3-requests, python3-httpx and python3-aiohttp are needed: make deps)"
    exit 1
fi
. tests/support/tally.sh
# shellcheck disable=SC2086
if ${CC:-cc} $FLAGS -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
        -fno-sanitize-recover=undefined -o "$WORK/driver-asan" $SRC; then
    run "AddressSanitizer and UndefinedBehaviorSanitizer" \
        env ASAN_OPTIONS=detect_leaks=1 "$WORK/driver-asan" "$WORK/cases" "$@"
else
    failed=$((failed + 1))
fi
# shellcheck disable=SC2086
if ${CC:-cc} $FLAGS -O2 -o "$WORK/driver" $SRC; then
    run "valgrind" env MULTIPART_FUZZ=300 MULTIPART_PAIRS=120 valgrind -q --error-exitcode=99 \
        --leak-check=full --errors-for-leak-kinds=definite,indirect "$WORK/driver" "$WORK/cases" "$@"
else
    failed=$((failed + 1))
fi
total
