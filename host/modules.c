/*
 * modules.c — the sesh executable's C modules, loaded on first use.
 *
 * libcurl brings in some forty shared libraries (TLS, Kerberos, LDAP, ...)
 * whose loading alone costs several times lua5.4's whole start-up. Most runs
 * of `sesh -e ...` or a console session never make a request, so the
 * executable does not link the transport: it takes the binding from
 * PREFIX/lib/lua/5.4/sessions.so the first time a script requires
 * `sessions.http`, `sessions.core` or `sessions.proc`. libsesh (the embedding API) links them
 * directly and does not use this file.
 *
 * The symbols defined here stand in for the real ones of sessions.so, which
 * resolves its own copies internally (it is opened RTLD_LOCAL).
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>

#include "binding/binding.h"
#include "transport/http.h"

typedef void (*cancel_fn)(void);

static void *module;                         /* sessions.so, once opened */
static lua_CFunction open_http, open_core, open_proc;
static volatile sig_atomic_t loaded;         /* cancel is read from a signal handler */
static cancel_fn cancel;

/* Opens sessions.so beside the host's libraries, or raises an error naming
 * the file and what the loader said. */
static void load_module(lua_State *L)
{
    if (loaded)
        return;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "sessions.host");
    lua_getfield(L, -1, "prefix");
    const char *prefix = lua_tostring(L, -1);
    const char *path = lua_pushfstring(L, "%s/lib/lua/5.4/sessions.so", prefix ? prefix : ".");
    module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (module == NULL)
        luaL_error(L, "sesh: cannot load the sessions C module: %s", dlerror());
    open_http = (lua_CFunction)dlsym(module, "luaopen_sessions_http");
    open_core = (lua_CFunction)dlsym(module, "luaopen_sessions_core");
    open_proc = (lua_CFunction)dlsym(module, "luaopen_sessions_proc");
    cancel = (cancel_fn)dlsym(module, "sesh_http_cancel_all");
    if (open_http == NULL || open_core == NULL || open_proc == NULL || cancel == NULL)
        luaL_error(L, "sesh: %s lacks the functions of this host (version mismatch?)", path);
    lua_pop(L, 4);
    loaded = 1;
}

int luaopen_sessions_http(lua_State *L)
{
    load_module(L);
    return open_http(L);
}

int luaopen_sessions_core(lua_State *L)
{
    load_module(L);
    return open_core(L);
}

int luaopen_sessions_proc(lua_State *L)
{
    load_module(L);
    return open_proc(L);
}

/* Nothing can be in flight before the module is loaded. */
void sesh_http_cancel_all(void)
{
    if (loaded)
        cancel();
}
