/*
 * clock.c — benchclock, the one thing the bench needs that Lua lacks: a
 * monotonic wall clock with sub-microsecond resolution (os.clock() is CPU
 * time, os.time() whole seconds). Built by tests/bench/bench.mk, loaded by
 * tests/bench/sesh_client.lua; not part of sesh.
 *
 *   local clock = require "benchclock"
 *   local t0 = clock.now()        -- seconds, CLOCK_MONOTONIC, as a float
 *   clock.sleep(0.25)             -- seconds
 *   clock.maxrss()                -- peak resident set of this process, bytes
 */
#include <errno.h>
#include <sys/resource.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

static int clock_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

static int clock_sleep(lua_State *L) {
    lua_Number seconds = luaL_checknumber(L, 1);
    luaL_argcheck(L, seconds >= 0, 1, "must not be negative");
    struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return 0;
}

static int clock_maxrss(lua_State *L) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    lua_pushinteger(L, (lua_Integer)ru.ru_maxrss * 1024);   /* Linux counts KiB */
    return 1;
}

int luaopen_benchclock(lua_State *L) {
    static const luaL_Reg funcs[] = {
        { "now", clock_now }, { "sleep", clock_sleep }, { "maxrss", clock_maxrss },
        { NULL, NULL }
    };
    luaL_newlib(L, funcs);
    return 1;
}
