#!/bin/sh
# The MCP suite:
#   1. tests/mcp/http_entry.c, built against the pool's objects: the HTTP
#      behaviour of the MCP server through its entry point (sesh_mcp_http);
#   2. the official MCP SDK (installed into build/npm/ by tests/support/npm.sh)
#      as client and server, and the Lua client and agent, through the busted
#      specs of this folder, over stdio and over HTTP (the pool's /mcp).
# Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
BUILD=${SESH_BUILD:-${BUILD:-build}}
WORK=$(mktemp -d "${SESH_TEST_TMP:-${TMPDIR:-/tmp}}/mcp-suite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
. tests/support/tally.sh

make --no-print-directory -s "$BUILD/bin/sesh-pool" "$BUILD/bin/sesh" >&2 ||
    { echo "0 passed, 1 failed"; exit 1; }
OBJS="$(ls "$BUILD"/obj/pool/*.o | grep -v '/main\.o$') $(ls "$BUILD"/obj/common/*.o)"
# shellcheck disable=SC2086
if ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -g -Ihost ${SANITIZE:-} \
        -o "$WORK/http_entry" tests/mcp/http_entry.c $OBJS \
        $(pkg-config --libs jansson libseccomp libmicrohttpd gnutls) -lpthread; then
    run "the HTTP entry point (tests/mcp/http_entry.c)" env SESH_TEST_TMP="$WORK" "$WORK/http_entry"
else
    failed=$((failed + 1))
fi

if sh tests/support/npm.sh; then
    run_tap "the SDK, the Lua client and the agent (busted specs)" \
        env SESH_TEST_TMP="$WORK" "$BUILD/bin/sesh" /usr/bin/busted -o TAP \
        -m 'tests/?.lua;tests/?/init.lua' tests/mcp
else
    echo "tests/support/npm.sh could not install the MCP SDK: the specs did not run"
    failed=$((failed + 1))
fi
total
