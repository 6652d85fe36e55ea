/*
 * lproc.c — sessions.proc: a child process with pipes to its stdin and
 * stdout, for clients of programs that speak on them (an MCP server launched
 * as a command, lua/mcp.lua).
 *
 *   local proc = require "sessions.proc"
 *   local p, err, name = proc.spawn{ command = "prog", args = { "-v" },
 *                                    env = { K = "v" },   -- added to the inherited environment
 *                                    cwd = "/dir",         -- default: ours
 *                                    stderr = "inherit" | false | "/path/file" }
 *   p:write(s)                 -> true | nil, message, name
 *   p:read_line([timeout [, max_bytes]]) -> line (without "\n") | nil, message, name
 *   p:close_stdin()            -> true
 *   p:wait([timeout])          -> "exit", code | "signal", number | nil, message, "timeout"
 *   p:kill([signal])           -> true | nil, message, name   (signal: number or "TERM", "KILL", ...)
 *   p:pid()                    -> number
 *   p:close()                  closes the pipes (also __gc and __close); the process is
 *                              not killed: it sees the end of its stdin
 *
 * Failures return nil, a message and a name (an errno name such as "ENOENT",
 * or "timeout", "eof", "interrupted", "too_large"), as luv does, never raise;
 * wrong argument types raise. The child is started by sesh_spawn_child (a
 * command without a slash is looked up on PATH), in a process group of its
 * own (a Ctrl-C meant for the script does not reach it). Writes never raise SIGPIPE: a child
 * gone is an EPIPE.
 */
#include "binding/binding.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#define PROC_META "sessions.proc"
#define READ_CHUNK 65536
#define DEFAULT_MAX_LINE (64 << 20)

extern char **environ;

typedef struct proc {
    pid_t pid;
    int in_fd, out_fd;          /* our ends: the child's stdin, its stdout (-1: closed) */
    int reaped;                 /* waitpid returned it: status holds the outcome */
    int status;
    char *buf;                  /* stdout read but not yet returned */
    size_t len, cap;
    int eof;
} proc;

static int fail(lua_State *L, int err, const char *what)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    const char *name = err == ENOENT ? "ENOENT" : err == EACCES ? "EACCES" : err == EPIPE ? "EPIPE"
                     : err == EBADF ? "EBADF" : err == ECHILD ? "ECHILD" : err == ESRCH ? "ESRCH"
                     : err == ENOEXEC ? "ENOEXEC" : err == EINVAL ? "EINVAL" : err == ENOMEM ? "ENOMEM"
                     : "EIO";
    lua_pushstring(L, name);
    return 3;
}

static int fail_named(lua_State *L, const char *message, const char *name)
{
    lua_pushnil(L);
    lua_pushstring(L, message);
    lua_pushstring(L, name);
    return 3;
}

static proc *check_proc(lua_State *L)
{
    return luaL_checkudata(L, 1, PROC_META);
}

/* ---- spawn ---- */

/* The inherited environment with env's variables added or replaced. */
static char **build_env(lua_State *L, int opts, int holder)
{
    lua_getfield(L, opts, "env");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_argcheck(L, lua_istable(L, -1), 1, "env must be a table of name = value");
    int env = lua_gettop(L);
    size_t n = 0, extra = 0;
    while (environ[n]) n++;
    lua_pushnil(L);
    while (lua_next(L, env)) {
        extra++;
        lua_pop(L, 1);
    }
    char **list = calloc(n + extra + 1, sizeof *list);
    if (!list) luaL_error(L, "proc.spawn: out of memory");
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, env)) {
        if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
            free(list);
            luaL_error(L, "proc.spawn: env must map names to strings");
        }
        const char *name = lua_tostring(L, -2);
        if (!*name || strchr(name, '=')) {
            free(list);
            luaL_error(L, "proc.spawn: '%s' is not a variable name", name);
        }
        lua_pushfstring(L, "%s=%s", name, lua_tostring(L, -1));
        list[k++] = (char *)lua_tostring(L, -1);
        lua_rawseti(L, holder, (lua_Integer)k);    /* kept alive until the spawn */
        lua_pop(L, 1);
    }
    size_t ours = k;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        int replaced = 0;
        for (size_t j = 0; j < ours && !replaced; j++)
            replaced = strncmp(list[j], environ[i], len + 1) == 0;
        if (!replaced) list[k++] = environ[i];
    }
    list[k] = NULL;
    lua_pop(L, 1);
    return list;
}

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_newtable(L);                               /* holds strings made here */
    int holder = lua_gettop(L);
    lua_getfield(L, 1, "command");
    if (!lua_isstring(L, -1)) luaL_error(L, "proc.spawn: command (a string) is required");
    lua_pop(L, 1);

    /* argv: command, then args */
    lua_getfield(L, 1, "args");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1)) luaL_error(L, "proc.spawn: args must be a list of strings");
    lua_Integer nargs = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
    char **argv = calloc((size_t)nargs + 2, sizeof *argv);
    if (!argv) return luaL_error(L, "proc.spawn: out of memory");
    lua_getfield(L, 1, "command");
    argv[0] = (char *)lua_tostring(L, -1);
    lua_rawseti(L, holder, -1);
    for (lua_Integer i = 1; i <= nargs; i++) {
        lua_geti(L, -1, i);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
            free(argv);
            return luaL_error(L, "proc.spawn: args[%d] must be a string", (int)i);
        }
        argv[i] = (char *)lua_tostring(L, -1);
        lua_rawseti(L, holder, -1 - i);
    }
    lua_pop(L, 1);

    char **envp = build_env(L, 1, holder);
    lua_getfield(L, 1, "cwd");
    const char *cwd = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "stderr");
    int stderr_null = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    const char *stderr_file = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "inherit") != 0
                              ? lua_tostring(L, -1) : NULL;

    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        free(argv);
        free(envp);
        return fail(L, e, "cannot make a pipe");
    }
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        close(in_pipe[0]);
        close(in_pipe[1]);
        free(argv);
        free(envp);
        return fail(L, e, "cannot make a pipe");
    }
    sesh_child child = { .argv = argv, .envp = envp, .cwd = cwd, .new_group = 1,
                         .fd = { in_pipe[0], out_pipe[1], -1 },
                         .path = { NULL, NULL, stderr_null ? "/dev/null" : stderr_file } };
    pid_t pid;
    int rc = sesh_spawn_child(&child, &pid);
    close(in_pipe[0]);
    close(out_pipe[1]);
    if (rc != 0) {
        close(in_pipe[1]);
        close(out_pipe[0]);
        lua_pushfstring(L, "cannot start %s", argv[0]);
        free(argv);
        free(envp);
        return fail(L, rc, lua_tostring(L, -1));
    }
    free(argv);
    free(envp);
    proc *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->in_fd = in_pipe[1];
    p->out_fd = out_pipe[0];
    luaL_setmetatable(L, PROC_META);
    return 1;
}

/* ---- talking ---- */

static int l_write(lua_State *L)
{
    proc *p = check_proc(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (p->in_fd < 0) return fail(L, EPIPE, "the process's input is closed");
    /* A child gone makes write raise SIGPIPE: keep it pending, then drop it. */
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    int err = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(p->in_fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { err = errno; break; }
        off += (size_t)w;
    }
    if (err == EPIPE) {
        struct timespec zero = { 0, 0 };
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) sigtimedwait(&pipe_only, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) return fail(L, err, "cannot write to the process");
    lua_pushboolean(L, 1);
    return 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Returns a line that is already in the buffer. */
static int take_line(lua_State *L, proc *p, size_t end)
{
    size_t n = end;
    if (n > 0 && p->buf[n - 1] == '\r') n--;
    lua_pushlstring(L, p->buf, n);
    memmove(p->buf, p->buf + end + 1, p->len - end - 1);
    p->len -= end + 1;
    return 1;
}

static int l_read_line(lua_State *L)
{
    proc *p = check_proc(L);
    double timeout = luaL_optnumber(L, 2, -1);
    lua_Integer max = luaL_optinteger(L, 3, DEFAULT_MAX_LINE);
    long long deadline = timeout < 0 ? -1 : now_ms() + (long long)(timeout * 1000);
    size_t scanned = 0;
    for (;;) {
        char *nl = p->len > scanned ? memchr(p->buf + scanned, '\n', p->len - scanned) : NULL;
        if (nl) return take_line(L, p, (size_t)(nl - p->buf));
        scanned = p->len;
        if ((lua_Integer)p->len > max) return fail_named(L, "the line is longer than the limit", "too_large");
        if (p->eof || p->out_fd < 0) {
            if (p->len > 0) {                   /* a last line without its newline */
                lua_pushlstring(L, p->buf, p->len);
                p->len = 0;
                return 1;
            }
            return fail_named(L, "the process closed its output", "eof");
        }
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            if (left <= 0) return fail_named(L, "no line came in time", "timeout");
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
        int r = poll(&pfd, 1, wait);
        if (r < 0 && errno == EINTR) return fail_named(L, "interrupted", "interrupted");
        if (r < 0) return fail(L, errno, "cannot wait for the process");
        if (r == 0) continue;
        if (p->cap - p->len < READ_CHUNK) {
            size_t cap = p->len + READ_CHUNK * 2;
            char *b = realloc(p->buf, cap);
            if (!b) return fail(L, ENOMEM, "cannot read from the process");
            p->buf = b;
            p->cap = cap;
        }
        ssize_t got = read(p->out_fd, p->buf + p->len, p->cap - p->len);
        if (got < 0 && errno == EINTR) return fail_named(L, "interrupted", "interrupted");
        if (got < 0) return fail(L, errno, "cannot read from the process");
        if (got == 0) p->eof = 1;
        p->len += (size_t)got;
    }
}

static int l_close_stdin(lua_State *L)
{
    proc *p = check_proc(L);
    if (p->in_fd >= 0) close(p->in_fd);
    p->in_fd = -1;
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- the process ---- */

static int push_status(lua_State *L, int status)
{
    if (WIFSIGNALED(status)) {
        lua_pushliteral(L, "signal");
        lua_pushinteger(L, WTERMSIG(status));
    } else {
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, WEXITSTATUS(status));
    }
    return 2;
}

static int l_wait(lua_State *L)
{
    proc *p = check_proc(L);
    double timeout = luaL_optnumber(L, 2, -1);
    long long deadline = timeout < 0 ? -1 : now_ms() + (long long)(timeout * 1000);
    while (!p->reaped) {
        pid_t r = waitpid(p->pid, &p->status, deadline < 0 ? 0 : WNOHANG);
        if (r == p->pid) { p->reaped = 1; break; }
        if (r < 0 && errno == EINTR) return fail_named(L, "interrupted", "interrupted");
        if (r < 0) return fail(L, errno, "cannot wait for the process");
        if (now_ms() >= deadline) return fail_named(L, "the process is still running", "timeout");
        struct timespec nap = { 0, 5 * 1000000 };    /* a child's exit has no descriptor to poll here */
        nanosleep(&nap, NULL);
    }
    return push_status(L, p->status);
}

static int signal_number(lua_State *L, int arg)
{
    static const struct { const char *name; int sig; } names[] = {
        { "TERM", SIGTERM }, { "KILL", SIGKILL }, { "INT", SIGINT }, { "HUP", SIGHUP },
        { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { NULL, 0 } };
    if (lua_isnoneornil(L, arg)) return SIGTERM;
    if (lua_type(L, arg) == LUA_TNUMBER) return (int)luaL_checkinteger(L, arg);
    const char *s = luaL_checkstring(L, arg);
    if (strncmp(s, "SIG", 3) == 0) s += 3;
    for (int i = 0; names[i].name; i++)
        if (strcmp(s, names[i].name) == 0) return names[i].sig;
    return luaL_argerror(L, arg, "unknown signal name");
}

static int l_kill(lua_State *L)
{
    proc *p = check_proc(L);
    int sig = signal_number(L, 2);
    if (p->reaped) return fail(L, ESRCH, "the process has exited");
    if (kill(p->pid, sig) != 0) return fail(L, errno, "cannot signal the process");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, check_proc(L)->pid);
    return 1;
}

static int l_close(lua_State *L)
{
    proc *p = check_proc(L);
    if (p->in_fd >= 0) close(p->in_fd);
    if (p->out_fd >= 0) close(p->out_fd);
    p->in_fd = p->out_fd = -1;
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
    if (!p->reaped && waitpid(p->pid, &p->status, WNOHANG) == p->pid) p->reaped = 1;
    return 0;
}

static int l_tostring(lua_State *L)
{
    proc *p = check_proc(L);
    lua_pushfstring(L, "sessions.proc (pid %d%s)", (int)p->pid, p->reaped ? ", exited" : "");
    return 1;
}

static const luaL_Reg proc_methods[] = {
    {"write", l_write}, {"read_line", l_read_line}, {"close_stdin", l_close_stdin},
    {"wait", l_wait}, {"kill", l_kill}, {"pid", l_pid}, {"close", l_close},
    {NULL, NULL}
};

static const luaL_Reg proc_functions[] = {
    {"spawn", l_spawn},
    {NULL, NULL}
};

int luaopen_sessions_proc(lua_State *L)
{
    if (luaL_newmetatable(L, PROC_META)) {
        luaL_newlib(L, proc_methods);
        lua_setfield(L, -2, "__index");
        sesh_handle_methods(L, l_close, l_tostring);
    }
    lua_pop(L, 1);
    luaL_newlib(L, proc_functions);
    return 1;
}
