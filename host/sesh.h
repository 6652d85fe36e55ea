/*
 * sesh.h — embedding the sesh host in a C program.
 *
 * A host is one lua_State with the standard libraries, the `sessions` module
 * (Python sessions on the local pool or on Azure), `cjson` and the Lua
 * libraries shipped with sesh on package.path. Two ways in:
 *
 *   sesh *S = sesh_open(NULL);                 a host of your own
 *   if (sesh_dostring(S, "local s <close> = require('sessions').new{}\n"
 *                        "print(s:execute('6 * 7').result)", "=demo"))
 *       fprintf(stderr, "%s\n", sesh_error(S));
 *   sesh_close(S);
 *
 *   luaL_requiref(L, "sessions", luaopen_sessions, 1);   into a lua_State you own
 *
 * Ownership: sesh_open returns a host the caller owns and frees with
 * sesh_close, which closes the lua_State (running finalizers: connections are
 * freed, but a session the code did not close, with s:close() or a <close>
 * variable, is left to the pool's idle timeout). Strings returned by
 * sesh_error belong to the host and stay valid until the next call on it.
 * The config's strings are copied; its callbacks and their ud pointers must
 * stay valid until sesh_close.
 *
 * Threads: use sesh from one thread. Hosts have their own lua_State, but all
 * hosts (and every state with luaopen_sessions) of a process share one HTTP
 * engine, which is single-threaded. sesh_interrupt alone may be called from
 * another thread or from a signal handler while code runs; it cancels every
 * request in flight in the process, not only that host's.
 *
 * Errors: functions returning int return 0 on success and non-zero on failure,
 * with the message (and a traceback) available from sesh_error.
 */
#ifndef SESH_H
#define SESH_H

#include <stddef.h>
#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SESH_VERSION "0.1.0"     /* the one place of the version: the Makefile reads it */

typedef struct sesh sesh;

/* Receives what Lua code writes with print and io.write (not io.stdout:write),
 * as it is written: pieces of lines, not necessarily NUL-terminated. */
typedef void (*sesh_output_fn)(void *ud, const char *data, size_t len);

/* Receives one log line of the host and the sessions module, without its
 * newline; level is "debug", "info", "warn" or "error". */
typedef void (*sesh_log_fn)(void *ud, const char *level, const char *line);

typedef struct sesh_config {
    const char *progname;      /* names the host in messages; default "sesh" */
    const char *prefix;        /* install prefix holding share/sesh/lua and
                                  bin/sesh-pool; NULL: found from where the
                                  running code was loaded */
    int ignore_env;            /* like `lua -E`: ignore LUA_PATH, LUA_CPATH, LUA_INIT */
    int warnings;              /* like `lua -W`: turn warnings on */
    sesh_output_fn output;     /* NULL: print and io.write go to stdout */
    void *output_ud;
    sesh_log_fn log;           /* NULL: warn and error lines go to stderr */
    void *log_ud;
} sesh_config;

/* A new host, or NULL when memory runs out. config may be NULL (defaults). */
sesh *sesh_open(const sesh_config *config);

/* The host's lua_State, owned by the host: push, call and read as you like,
 * but do not lua_close it. */
lua_State *sesh_lua(sesh *S);

/* Runs a Lua file (NULL: standard input) or a string, with the standard
 * arguments of a chunk. chunkname as in luaL_loadbuffer (NULL: the code). */
int sesh_dofile(sesh *S, const char *path);
int sesh_dostring(sesh *S, const char *code, const char *chunkname);

/* lua_pcall on the host's state with a message handler that adds a
 * traceback (and uses an error object's __tostring): the function and its
 * nargs arguments on top; on error the message is left on the stack, as
 * lua_pcall leaves it, and also kept for sesh_error. Returns lua_pcall's status. */
int sesh_pcall(sesh *S, int nargs, int nresults);

/* The message of the last failed call, with its traceback; "" when none. */
const char *sesh_error(const sesh *S);

/* Stops the code running in the host as soon as possible: the running chunk
 * fails with "interrupted!" and every HTTP request in flight is cancelled.
 * Safe from a signal handler or another thread. While a request runs, the
 * transport itself also turns SIGINT into a cancel. */
void sesh_interrupt(sesh *S);

/* Closes the lua_State and frees the host. NULL is ok. */
void sesh_close(sesh *S);

/* Prepares a lua_State the application owns (standard libraries already
 * open) the way sesh_open prepares its own: preloads sessions.http,
 * sessions.core and cjson, puts the shipped Lua libraries first on
 * package.path and registers package.loaded["sessions.host"]. Raises a Lua
 * error on failure; call it through lua_pcall or luaL_requiref. */
void sesh_openlibs(lua_State *L, const sesh_config *config);

/* The module itself: sesh_openlibs if not done yet, then loads the Lua face
 * (sessions.lua on package.path) and returns it. Also the entry point of
 * sessions.so for stock lua5.4. */
int luaopen_sessions(lua_State *L);

/* sessions.host: what the Lua face learns from its host, the same table
 * sesh_openlibs registers (and registering it first if needed), so that
 * `require "sessions.host"` answers under stock lua5.4 too:
 *   version, program, prefix, exe_dir (where sesh-pool is), lua_dir,
 *   pool (exe_dir .. "/sesh-pool"), log(level, line). */
int luaopen_sessions_host(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
