#!/bin/sh
# Installs the Debian packages sesh needs that are missing (make deps).
# Each one is here for a reason given in README.md, "Dependencies".
#   sh tests/support/deps.sh              the packages below
#   sh tests/support/deps.sh PKG...       those instead (make bench's own)
set -u

PACKAGES="
build-essential pkg-config
lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev lua-busted
libcurl4-openssl-dev libreadline-dev libmicrohttpd-dev libgnutls28-dev libjansson-dev
bubblewrap libseccomp-dev openssl valgrind strace python3-pexpect
python3 python3-ipython python3-numpy python3-pandas python3-matplotlib python3-sklearn
python3-requests python3-httpx python3-aiohttp python3-venv python3-setuptools
"

[ "$#" -gt 0 ] && PACKAGES="$*"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "sesh: installing missing packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
   $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
then
    exit 0
fi
echo "sesh: could not install these Debian packages:$missing" >&2
echo "sesh: install them as root (apt-get install$missing) and run make again." >&2
exit 1
