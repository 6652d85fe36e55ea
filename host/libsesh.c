/*
 * libsesh.c — a Lua state with sesh's libraries: the embedding API of sesh.h,
 * used by the `sesh` command line too, and luaopen_sessions for sessions.so.
 *
 * Where things are: the code of this file lives in the sesh executable
 * (PREFIX/bin), in libsesh.so (PREFIX/lib) or in sessions.so
 * (PREFIX/lib/lua/5.4). From that file the host derives the install prefix,
 * hence the shipped Lua libraries (PREFIX/share/sesh/lua) and the pool binary
 * (PREFIX/bin/sesh-pool). The build tree has the same layout, so nothing
 * differs between a build and an install. The runner the command line and
 * the console share (libsesh.h) is here too.
 */
#include "sesh.h"
#include "libsesh.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "binding/binding.h"
#include "transport/http.h"

#ifndef SESH_PREFIX
#define SESH_PREFIX "/usr/local"      /* last resort for a statically linked embedder */
#endif

#define CALLBACKS_KEY "sesh.callbacks"   /* registry: the config's callbacks */

struct sesh {
    lua_State *L;
    char *error;          /* last error message, malloc'd; NULL when none */
};

/* The callbacks of a config, kept in a userdata the Lua closures share. */
typedef struct callbacks {
    sesh_output_fn output;
    void *output_ud;
    sesh_log_fn log;
    void *log_ud;
    char progname[64];
} callbacks;


/* --- where things are ---------------------------------------------------- */

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Cuts the last component of path; returns 0 if there is none to cut. */
static int cut_last(char *path)
{
    char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path)
        return 0;
    *slash = '\0';
    return 1;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* The absolute path of the file (executable or shared object) this code was
 * loaded from. The loader's own record says which: a shared object has the
 * name it was opened by (relative when found through a relative LUA_CPATH or
 * LD_LIBRARY_PATH, hence realpath, while the working directory is still the
 * one it was opened from), the main program an empty name, and then the
 * kernel knows its file. */
static int code_file(char *buf, size_t size)
{
    Dl_info info;
    struct link_map *map = NULL;
    if (dladdr1((void *)&sesh_openlibs, &info, (void **)&map, RTLD_DL_LINKMAP) && map
            && map->l_name && map->l_name[0] && realpath(map->l_name, buf) != NULL)
        return 1;                                   /* a shared object */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || (size_t)n >= size)
        return 0;
    exe[n] = '\0';
    memcpy(buf, exe, (size_t)n + 1);
    return 1;
}

static int has_lua_dir(const char *prefix)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/share/sesh/lua", prefix);
    return is_dir(dir);
}

/* Fills prefix with the install prefix of the running code and bindir with
 * the directory of sesh's executables (where sesh-pool is). */
static void find_prefix(char *prefix, char *bindir, size_t size)
{
    char dir[PATH_MAX];
    prefix[0] = bindir[0] = '\0';
    if (code_file(dir, sizeof dir) && cut_last(dir)) {
        if (ends_with(dir, "/lib/lua/5.4")) {           /* sessions.so */
            dir[strlen(dir) - strlen("/lib/lua/5.4")] = '\0';
            snprintf(bindir, size, "%s/bin", dir);
        } else if (ends_with(dir, "/lib")) {            /* libsesh.so */
            cut_last(dir);
            snprintf(bindir, size, "%s/bin", dir);
        } else {                                        /* sesh, or a program linking libsesh.a */
            snprintf(bindir, size, "%s", dir);
            if (!cut_last(dir))
                dir[0] = '\0';                         /* an executable in / */
        }
        snprintf(prefix, size, "%s", dir);
    }
    if (!has_lua_dir(prefix) && (has_lua_dir(SESH_PREFIX) || bindir[0] == '\0')) {
        snprintf(prefix, size, "%s", SESH_PREFIX);
        snprintf(bindir, size, "%s/bin", SESH_PREFIX);
    }
}


/* --- output and log routing --------------------------------------------- */

static callbacks *get_callbacks(lua_State *L)
{
    callbacks *cb;
    lua_getfield(L, LUA_REGISTRYINDEX, CALLBACKS_KEY);
    cb = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return cb;
}

static void emit(lua_State *L, const char *s, size_t len)
{
    callbacks *cb = get_callbacks(L);
    if (cb != NULL && cb->output != NULL)
        cb->output(cb->output_ud, s, len);
    else
        fwrite(s, 1, len, stdout);
}

/* print, routed to the output callback (as luaB_print formats). */
static int routed_print(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            emit(L, "\t", 1);
        emit(L, s, len);
        lua_pop(L, 1);
    }
    emit(L, "\n", 1);
    return 0;
}

/* io.write, routed to the output callback; returns io.stdout as io.write does. */
static int routed_write(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        emit(L, s, len);
    }
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "stdout");
    return 1;
}

static int log_enabled(const char *level)
{
    const char *want = getenv("SESH_LOG");
    static const char *const order[] = { "debug", "info", "warn", "error", NULL };
    int lv = 2, wv = 2;                       /* by default: warn and error */
    for (int i = 0; order[i]; i++) {
        if (strcmp(level, order[i]) == 0) lv = i;
        if (want && strcmp(want, order[i]) == 0) wv = i;
    }
    return lv >= wv;
}

/* sessions.host.log(level, line): one log line of the module or the host. */
static int host_log(lua_State *L)
{
    static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
    const char *level = levels[luaL_checkoption(L, 1, "info", levels)];
    const char *line = luaL_checkstring(L, 2);
    callbacks *cb = get_callbacks(L);
    if (cb != NULL && cb->log != NULL)
        cb->log(cb->log_ud, level, line);
    else if (log_enabled(level)) {
        fprintf(stderr, "%s: %s: %s\n", cb ? cb->progname : "sesh", level, line);
        fflush(stderr);
    }
    return 0;
}

static void install_callbacks(lua_State *L, const sesh_config *config)
{
    callbacks *cb = lua_newuserdatauv(L, sizeof *cb, 0);
    memset(cb, 0, sizeof *cb);
    snprintf(cb->progname, sizeof cb->progname, "%s",
             config && config->progname ? config->progname : "sesh");
    if (config) {
        cb->output = config->output;
        cb->output_ud = config->output_ud;
        cb->log = config->log;
        cb->log_ud = config->log_ud;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, CALLBACKS_KEY);
    if (cb->output == NULL)
        return;
    lua_pushcfunction(L, routed_print);
    lua_setglobal(L, "print");
    if (lua_getglobal(L, "io") == LUA_TTABLE) {
        lua_pushcfunction(L, routed_write);
        lua_setfield(L, -2, "write");
    }
    lua_pop(L, 1);
}


/* --- the libraries ------------------------------------------------------- */

static void preload(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, name) == LUA_TNIL) {
        lua_pushcfunction(L, open);
        lua_setfield(L, -3, name);
    }
    lua_pop(L, 2);
}

/* package.path = "<lua_dir>/?.lua;<lua_dir>/?/init.lua;" .. package.path */
static void prepend_path(lua_State *L, const char *lua_dir)
{
    lua_getglobal(L, "package");
    if (!lua_istable(L, -1))
        luaL_error(L, "sesh: the package library is not open");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lua_dir, lua_dir,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

/* package.loaded["sessions.host"]: what the Lua face needs from its host. */
static void register_host(lua_State *L, const char *prefix, const char *bindir,
                          const char *lua_dir, const sesh_config *config)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_createtable(L, 0, 8);
    lua_pushliteral(L, SESH_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, config && config->progname ? config->progname : "sesh");
    lua_setfield(L, -2, "program");
    lua_pushstring(L, prefix);
    lua_setfield(L, -2, "prefix");
    lua_pushstring(L, bindir);
    lua_setfield(L, -2, "exe_dir");
    lua_pushstring(L, lua_dir);
    lua_setfield(L, -2, "lua_dir");
    lua_pushfstring(L, "%s/sesh-pool", bindir);
    lua_setfield(L, -2, "pool");
    lua_pushcfunction(L, host_log);
    lua_setfield(L, -2, "log");
    lua_setfield(L, -2, "sessions.host");
    lua_pop(L, 1);
}

void sesh_openlibs(lua_State *L, const sesh_config *config)
{
    char prefix[PATH_MAX] = "", bindir[PATH_MAX] = "";
    if (config && config->prefix) {
        snprintf(prefix, sizeof prefix, "%s", config->prefix);
        snprintf(bindir, sizeof bindir, "%s/bin", config->prefix);
    } else {
        find_prefix(prefix, bindir, sizeof prefix);
    }
    const char *lua_dir = lua_pushfstring(L, "%s/share/sesh/lua", prefix);

    install_callbacks(L, config);
    preload(L, "cjson", luaopen_cjson);
    preload(L, "sessions.http", luaopen_sessions_http);
    preload(L, "sessions.core", luaopen_sessions_core);
    preload(L, "sessions.proc", luaopen_sessions_proc);
    prepend_path(L, lua_dir);
    register_host(L, prefix, bindir, lua_dir, config);
    lua_pop(L, 1);
}


/* --- the module for stock Lua -------------------------------------------- */

static int host_registered(lua_State *L)
{
    int yes;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    yes = lua_getfield(L, -1, "sessions.host") == LUA_TTABLE;
    lua_pop(L, 2);
    return yes;
}

/* Pushes the path of the Lua face, sessions.lua, or raises a clear error:
 * where it was looked for (the files package.searchpath tried, one a line),
 * and what to do, as lua's own "module not found" says it. */
static void find_face(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushliteral(L, "sessions");
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) {
        const char *tried = lua_tostring(L, -1);
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        lua_getfield(L, -1, "sessions.host");
        lua_getfield(L, -1, "lua_dir");
        luaL_error(L, "module 'sessions': sessions.so needs its Lua part (sessions.lua), "
                      "installed in %s with it (make install), or set LUA_PATH to the "
                      "folder that holds it (e.g. LUA_PATH='/path/to/sesh/lua/?.lua;;'):\n\t%s",
                   lua_tostring(L, -1), tried[0] == '\n' ? tried + 2 : tried);
    }
    lua_pop(L, 1);
    lua_remove(L, -2);
}

int luaopen_sessions_host(lua_State *L)
{
    if (!host_registered(L))
        sesh_openlibs(L, NULL);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "sessions.host");
    return 1;
}

int luaopen_sessions(lua_State *L)
{
    if (!host_registered(L))
        sesh_openlibs(L, NULL);
    find_face(L);
    const char *path = lua_tostring(L, -1);
    if (luaL_loadfile(L, path) != LUA_OK)
        return lua_error(L);
    lua_pushliteral(L, "sessions");
    lua_pushvalue(L, -3);
    lua_call(L, 2, 1);
    return 1;
}


/* --- a host of one's own ------------------------------------------------- */

/* Whether the error is the transport's Ctrl-C (an error value of kind
 * "interrupted"): the person who pressed it knows where they were, and a
 * traceback would only show the module's insides. */
static int is_interrupt(lua_State *L, int i)
{
    if (!lua_istable(L, i) || !lua_getmetatable(L, i))
        return 0;
    lua_pop(L, 1);
    int yes = lua_getfield(L, i, "kind") == LUA_TSTRING
              && strcmp(lua_tostring(L, -1), "interrupted") == 0;
    lua_pop(L, 1);
    return yes;
}

/* The message of an error (through __tostring for an error object that has
 * one) with a traceback; a Ctrl-C of a request without. */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL && is_interrupt(L, 1) && luaL_callmeta(L, 1, "__tostring")
            && lua_type(L, -1) == LUA_TSTRING)
        return 1;
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int open_host(lua_State *L)
{
    const sesh_config *config = lua_touserdata(L, 1);
    if (config && config->ignore_env) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    sesh_openlibs(L, config);
    if (config && config->warnings)
        lua_warning(L, "@on", 0);
    return 0;
}

static void set_error(sesh *S, const char *msg)
{
    free(S->error);
    S->error = msg ? strdup(msg) : NULL;
}


int sesh_pcall(sesh *S, int nargs, int nresults)
{
    lua_State *L = S->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (status != LUA_OK)
        set_error(S, lua_tostring(L, -1));
    else
        set_error(S, NULL);
    return status;
}

/* Runs the chunk a load left on the stack (or reports why it did not load). */
static int run_loaded(sesh *S, int status)
{
    if (status == LUA_OK)
        status = sesh_pcall(S, 0, 0);
    else
        set_error(S, lua_tostring(S->L, -1));
    if (status != LUA_OK) {
        lua_pop(S->L, 1);
        return 1;
    }
    return 0;
}

sesh *sesh_open(const sesh_config *config)
{
    sesh *S = calloc(1, sizeof *S);
    if (S == NULL)
        return NULL;
    S->L = luaL_newstate();
    if (S->L == NULL) {
        free(S);
        return NULL;
    }
    lua_pushcfunction(S->L, open_host);
    lua_pushlightuserdata(S->L, (void *)config);
    if (lua_pcall(S->L, 1, 0, 0) != LUA_OK) {   /* only out of memory */
        lua_close(S->L);
        free(S);
        return NULL;
    }
    return S;
}

lua_State *sesh_lua(sesh *S)
{
    return S->L;
}

int sesh_dofile(sesh *S, const char *path)
{
    return run_loaded(S, luaL_loadfile(S->L, path));
}

int sesh_dostring(sesh *S, const char *code, const char *chunkname)
{
    return run_loaded(S, luaL_loadbuffer(S->L, code, strlen(code), chunkname ? chunkname : code));
}

const char *sesh_error(const sesh *S)
{
    return S->error ? S->error : "";
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

void sesh_interrupt(sesh *S)
{
    sesh_http_cancel_all();
    lua_sethook(S->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* --- the runner of the command line and the console -------------------- */

static sesh *running;                 /* the host Ctrl-C interrupts */
static volatile sig_atomic_t in_console;

static void on_sigint(int sig)
{
    if (!in_console)
        signal(sig, SIG_DFL);         /* a second Ctrl-C kills, as it kills lua */
    if (running)
        sesh_interrupt(running);
}

int sesh_run(sesh *S, int narg, int nres, int console)
{
    sesh *outer = running;
    int outer_console = in_console;
    running = S;
    in_console = console;
    void (*previous)(int) = signal(SIGINT, on_sigint);
    int status = sesh_pcall(S, narg, nres);
    signal(SIGINT, previous);
    lua_sethook(S->L, NULL, 0, 0);    /* a Ctrl-C that came too late must not hit the next chunk */
    running = outer;
    in_console = outer_console;
    return status;
}

void sesh_close(sesh *S)
{
    if (S == NULL)
        return;
    lua_close(S->L);
    free(S->error);
    free(S);
}
