#!/bin/sh
# Installs the Debian packages only the bench needs (make bench), if missing:
#   python3-requests  the Python client sesh is measured against
set -u

PACKAGES="python3-requests"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "sesh bench: installing missing packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing && exit 0
echo "sesh bench: could not install:$missing; the Python rows will read n/a." >&2
exit 0   # the bench still measures sesh without them
