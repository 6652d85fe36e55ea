#!/bin/sh
# Installs the Node packages the tests use (the official MCP SDK, the
# reference client and server of tests/mcp) into $BUILD/npm/, once: `npm ci`
# from tests/support/npm/package-lock.json, so versions and hashes are
# pinned. Nothing of sesh itself is built with them. Runs again only when the
# lockfile changed. Needs Node.js (>= 18) and npm, and the npm registry.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${SESH_BUILD:-${BUILD:-build}}
DEST="$BUILD/npm"
SRC=tests/support/npm

if [ -f "$DEST/.installed" ] && cmp -s "$SRC/package-lock.json" "$DEST/.installed"; then
    exit 0
fi
for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "npm.sh: $tool is not installed; the MCP tests need Node.js and npm" >&2; exit 1; }
done
mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9                         # two test runs at once install once
if [ -f "$DEST/.installed" ] && cmp -s "$SRC/package-lock.json" "$DEST/.installed"; then
    exit 0
fi
echo "npm.sh: installing $(sed -n 's/.*"@modelcontextprotocol\/sdk": "\(.*\)".*/@modelcontextprotocol\/sdk@\1/p' \
    "$SRC/package.json" | head -n 1) into $DEST" >&2
rm -f "$DEST/.installed"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
    { echo "npm.sh: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }
cp "$SRC/package-lock.json" "$DEST/.installed"
