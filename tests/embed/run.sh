#!/bin/sh
# Installs sesh into a temporary prefix, builds a C program against it with
# pkg-config, runs a workflow through it (also under valgrind), checks the
# installed sesh and sessions.so, then uninstalls. Prints "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
BUILD=${SESH_BUILD:-build}
TMP=$(mktemp -d "${SESH_TEST_TMP:-/tmp}/embed.XXXXXX")
PREFIX="$TMP/prefix"
passed=0 failed=0

check() {   # check NAME COMMAND...: runs the command, its output in $TMP/NAME.log
    name=$1; shift
    if "$@" >"$TMP/$name.log" 2>&1; then
        passed=$((passed + 1)); echo "ok - $name"
    else
        failed=$((failed + 1)); echo "not ok - $name"; sed 's/^/    /' "$TMP/$name.log" | tail -n 40
    fi
}

installed_files() {
    for f in bin/sesh bin/sesh-pool lib/libsesh.a lib/libsesh.so lib/libsesh.so.0 \
             lib/lua/5.4/sessions.so include/sesh.h lib/pkgconfig/sesh.pc \
             share/sesh/lua/sessions.lua share/sesh/lua/pretty.lua share/sesh/lua/console.lua; do
        [ -e "$PREFIX/$f" ] || { echo "missing: $f"; return 1; }
    done
    # the Lua libraries are copies, not links into the source tree
    [ ! -L "$PREFIX/share/sesh/lua" ] || { echo "share/sesh/lua is a link"; return 1; }
}

build_demo() {
    export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
    echo "cflags/libs: $(pkg-config --cflags --libs sesh)"
    cc -Wall -Wextra -Werror -o "$TMP/embed_demo" tests/embed/embed_demo.c \
        $(pkg-config --cflags --libs sesh)
}

run_demo() {
    out=$("$TMP/embed_demo" "$PWD/tests/embed/workflow.lua") || { echo "$out"; return 1; }
    echo "$out"
    echo "$out" | grep -q '^embed_demo: all checks passed$'
}

# What `pkg-config --static` gives links a program with libsesh.a (the system's
# libcurl stays shared), and the program runs the workflow. It lives in
# PREFIX/bin for the run: a static embedder finds sesh's Lua beside itself.
build_static_demo() {
    export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
    libs=$(pkg-config --static --libs sesh) || return 1
    echo "static libs: $libs"
    demo="$PREFIX/bin/embed_static"
    cc -Wall -Wextra -Werror -o "$demo" tests/embed/embed_demo.c \
        $(pkg-config --cflags sesh) $(echo "$libs" | sed 's/-lsesh/-l:libsesh.a/') || return 1
    if ldd "$demo" | grep libsesh; then echo "linked libsesh.so"; rm -f "$demo"; return 1; fi
    out=$("$demo" "$PWD/tests/embed/workflow.lua"); rc=$?
    rm -f "$demo"
    echo "$out"
    [ "$rc" -eq 0 ] && echo "$out" | grep -q '^embed_demo: all checks passed$'
}

demo_uses_installed_lib() {
    ldd "$TMP/embed_demo" | grep "libsesh.so.0 => $PREFIX/lib/libsesh.so.0"
}

valgrind_demo() {
    valgrind --quiet --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible \
        "$TMP/embed_demo" "$PWD/tests/embed/workflow.lua"
}

installed_sesh() (
    cd "$TMP" || return 1
    out=$(env -u LUA_PATH -u LUA_CPATH "$PREFIX/bin/sesh" -e '
        local h = require "sessions.host"
        print(h.exe_dir, package.searchpath("sessions", package.path))') || return 1
    echo "$out"
    [ "$out" = "$PREFIX/bin	$PREFIX/share/sesh/lua/sessions.lua" ]
)

stock_lua_finds_installed_module() (
    cd "$TMP" || return 1
    out=$(env -u LUA_PATH LUA_CPATH="$PREFIX/lib/lua/5.4/?.so;;" lua5.4 -e '
        local s = require "sessions"
        print(type(s.new), require("sessions.host").pool)') || return 1
    echo "$out"
    [ "$out" = "function	$PREFIX/bin/sesh-pool" ]
)

uninstalled() {
    make --no-print-directory uninstall PREFIX="$PREFIX" BUILD="$BUILD" || return 1
    left=$(find "$PREFIX" -type f -o -type l)
    [ -z "$left" ] || { echo "left behind:"; echo "$left"; return 1; }
    # the folders install made go too (the prefix did not exist before)
    [ ! -e "$PREFIX" ] || { echo "folders left behind:"; find "$PREFIX"; return 1; }
}

# A prefix with folders of its own keeps them (and what they hold).
uninstall_keeps_what_was_there() {
    other="$TMP/other-prefix"
    mkdir -p "$other/bin" "$other/include" && touch "$other/bin/mine" || return 1
    make --no-print-directory install PREFIX="$other" BUILD="$BUILD" >/dev/null || return 1
    make --no-print-directory uninstall PREFIX="$other" BUILD="$BUILD" || return 1
    left=$(cd "$other" && find . | sort | tr '\n' ' ')
    echo "left: $left"
    [ "$left" = ". ./bin ./bin/mine ./include " ]
}

check install make --no-print-directory install PREFIX="$PREFIX" BUILD="$BUILD"
check installed-files installed_files
check pkg-config-build build_demo
check demo-links-installed-libsesh demo_uses_installed_lib
check pkg-config-static-build build_static_demo
check workflow-through-libsesh run_demo
check valgrind-clean valgrind_demo
check installed-sesh-finds-its-libraries installed_sesh
check stock-lua-finds-installed-module stock_lua_finds_installed_module
check uninstall-removes-everything uninstalled
check uninstall-keeps-what-was-there uninstall_keeps_what_was_there
rm -rf "$TMP"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
