/*
 * los.c — the OS layer of sessions.core: the system calls the Lua face needs,
 * so that it never runs a shell command (sleep, id -u, stat, mkdir -p, flock,
 * a start-up script) to get them.
 *
 *   core.monotonic() -> seconds (CLOCK_MONOTONIC: the clock of every deadline)
 *   core.getuid() -> uid
 *   core.stat(path) -> { type, mode, uid, gid, size, mtime } | nil, message, name
 *   core.mkdir(path [, mode]) -> true | nil, message, name     (mkdir -p; mode 0777)
 *   core.readdir(path) -> { name, ... } | nil, message, name
 *                                   the names in a directory, but . and .., in no
 *                                   particular order
 *   core.lock(path [, timeout]) -> lock | nil, message, name
 *                                   exclusive flock on path (created 0600); waits up
 *                                   to timeout seconds (default: forever);
 *                                   lock:unlock(), also on __close and __gc
 *   core.spawn(argv [, { stdin =, stdout =, stderr = }]) -> pid | nil, message, name
 *                                   runs argv[1] (searched on PATH when it has no
 *                                   '/') with argv as its arguments, no shell;
 *                                   stdin from a file (default /dev/null), stdout and
 *                                   stderr appended to files (default: ours)
 *   core.wait(pid) -> "exit", status | "signal", number | nil, message, name
 *
 * As in luv, a failure returns nil, a message ("stat /x: No such file or
 * directory") and the errno's name ("ENOENT"); bad arguments raise. core.sleep
 * is in lhttp.c: it yields to the http.run scheduler.
 */
#include "binding/binding.h"

#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOCK_MT "sessions.core.lock"
#define DIR_MT "sessions.core.dir"
#define MAX_ARGS 256

extern char **environ;

/* nil, "<what> <path>: <strerror>", "<ENAME>"; errno as the system left it. */
static int failure(lua_State *L, int e, const char *what, const char *path)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    const char *name = strerrorname_np(e);
    lua_pushstring(L, name ? name : "EUNKNOWN");
    return 3;
}

static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, sesh_monotonic());
    return 1;
}

static int l_getuid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getuid());
    return 1;
}

static const char *type_name(mode_t m)
{
    if (S_ISREG(m)) return "file";
    if (S_ISDIR(m)) return "directory";
    if (S_ISLNK(m)) return "link";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISFIFO(m)) return "fifo";
    if (S_ISCHR(m)) return "char";
    if (S_ISBLK(m)) return "block";
    return "unknown";
}

static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0)
        return failure(L, errno, "stat", path);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, type_name(st.st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_mode);    /* with the type bits, as luv's */
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, (lua_Integer)st.st_gid);
    lua_setfield(L, -2, "gid");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    return 1;
}

static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0777);
    luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "a mode from 0 to 07777");
    if (sesh_mkdirs(path, (mode_t)mode) != 0)
        return failure(L, errno, "mkdir", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- directories ---- */

/* The open directory lives in a userdata, so that an error raised while the
 * names are collected (no memory) still closes it, at the next collection. */
static int l_dir_gc(lua_State *L)
{
    DIR **d = luaL_checkudata(L, 1, DIR_MT);
    if (*d) {
        closedir(*d);
        *d = NULL;
    }
    return 0;
}

static int l_readdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
    *d = NULL;
    luaL_setmetatable(L, DIR_MT);
    *d = opendir(path);
    if (!*d)
        return failure(L, errno, "readdir", path);
    lua_newtable(L);
    lua_Integer n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(*d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            lua_pushstring(L, e->d_name);
            lua_rawseti(L, -2, ++n);
        }
        errno = 0;
    }
    int e_read = errno;
    closedir(*d);
    *d = NULL;
    if (e_read)
        return failure(L, e_read, "readdir", path);
    return 1;
}

/* ---- locks ---- */

typedef struct {
    int fd;                     /* -1 once unlocked */
} lock_ud;

static int l_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    double timeout = luaL_optnumber(L, 2, -1);
    lock_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->fd = -1;
    luaL_setmetatable(L, LOCK_MT);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);   /* no child inherits it */
    if (fd < 0)
        return failure(L, errno, "lock", path);
    u->fd = fd;
    /* flock has no timeout: try, then sleep a little longer each time */
    double deadline = sesh_monotonic() + timeout, pause = 0.005;
    while (flock(fd, LOCK_EX | (timeout >= 0 ? LOCK_NB : 0)) != 0) {
        int e = errno;
        if (e == EINTR && timeout < 0)
            continue;
        if (e != EWOULDBLOCK && e != EINTR) {
            close(fd);
            u->fd = -1;
            return failure(L, e, "lock", path);
        }
        double left = deadline - sesh_monotonic();
        if (left <= 0) {
            close(fd);
            u->fd = -1;
            lua_pushnil(L);
            lua_pushfstring(L, "lock %s: still held by another process after %f s", path, timeout);
            lua_pushliteral(L, "ETIMEDOUT");
            return 3;
        }
        sesh_sleep(pause < left ? pause : left);
        if (pause < 0.1)
            pause *= 2;
    }
    return 1;
}

static int l_unlock(lua_State *L)
{
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    if (u->fd >= 0)
        close(u->fd);           /* closing the descriptor releases the lock */
    u->fd = -1;
    return 0;
}

static int l_lock_tostring(lua_State *L)
{
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushstring(L, u->fd >= 0 ? "sessions.core.lock (held)" : "sessions.core.lock (released)");
    return 1;
}

/* ---- processes ---- */

/* The string at opts[key], left on the stack so that it stays alive; NULL
 * (nothing pushed) when opts or the field is absent. */
static const char *opt_path(lua_State *L, int opts, const char *key)
{
    if (lua_isnoneornil(L, opts))
        return NULL;
    if (lua_getfield(L, opts, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "spawn: option '%s' must be a path", key);
    return lua_tostring(L, -1);
}

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1 && n <= MAX_ARGS, 1, "a list of 1 to 256 strings");
    luaL_checkstack(L, (int)n + 8, "spawn arguments");
    const char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
            luaL_error(L, "spawn: argument %d is not a string", (int)i);
        argv[i - 1] = lua_tostring(L, -1);          /* stays on the stack */
    }
    argv[n] = NULL;
    const char *in = opt_path(L, 2, "stdin");
    const char *out = opt_path(L, 2, "stdout");
    const char *err = opt_path(L, 2, "stderr");

    sesh_child child = { .argv = (char *const *)argv, .fd = { -1, -1, -1 },
                         .path = { in ? in : "/dev/null", out, err } };
    pid_t pid = -1;
    int rc = sesh_spawn_child(&child, &pid);
    if (rc != 0)
        return failure(L, rc, "spawn", argv[0]);
    lua_pushinteger(L, pid);
    return 1;
}

static int l_wait(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int status;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (got < 0)
        return failure(L, errno, "wait", lua_tostring(L, 1));
    if (WIFSIGNALED(status)) {
        lua_pushliteral(L, "signal");
        lua_pushinteger(L, WTERMSIG(status));
    } else {
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, WEXITSTATUS(status));
    }
    return 2;
}

static const luaL_Reg os_functions[] = {
    {"monotonic", l_monotonic},
    {"getuid", l_getuid},
    {"stat", l_stat},
    {"mkdir", l_mkdir},
    {"readdir", l_readdir},
    {"lock", l_lock},
    {"spawn", l_spawn},
    {"wait", l_wait},
    {NULL, NULL}
};

void sesh_core_open_os(lua_State *L)
{
    if (luaL_newmetatable(L, DIR_MT)) {
        lua_pushcfunction(L, l_dir_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, LOCK_MT)) {
        sesh_handle_methods(L, l_unlock, l_lock_tostring);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, l_unlock);
        lua_setfield(L, -2, "unlock");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, os_functions, 0);
}
