#!/bin/sh
# The console, driven through a pseudo-terminal by pexpect (see console_test.py).
cd "$(dirname "$0")/../.." || exit 1
exec /usr/bin/python3 tests/console/console_test.py "$@"
