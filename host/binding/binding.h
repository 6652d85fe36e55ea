/*
 * binding.h — the Lua C modules of sesh and what their files share. The host
 * preloads the modules; sessions.so exports them for stock lua5.4 (found by
 * the all-in-one C loader).
 *
 *   sessions.http   lhttp.c      HTTP clients over the transport, http.run
 *   sessions.core   lcore.c      bytes (base64, PNG header, UUID), and from the
 *                   los.c        OS layer (clock, uid, stat, mkdir, lock, spawn),
 *                   ljson.c      the JSON decoder,
 *                   lerror.c     the error value,
 *                   lhttp.c      sleep (it yields to http.run's scheduler)
 *   (no module)     lprogress.c  the progress bar drawn from the transport's figures
 */
#ifndef SESH_BINDING_H
#define SESH_BINDING_H

#include <lua.h>

#include "transport/http.h"

int luaopen_sessions_http(lua_State *L);
int luaopen_sessions_core(lua_State *L);
int luaopen_sessions_proc(lua_State *L);   /* a child process with pipes (lproc.c) */

/* The error value (lerror.c): sesh_error_new pushes { kind, code, message } with
 * its metatable; sesh_error_metatable pushes the metatable, made once. */
void sesh_error_new(lua_State *L, const char *kind, long long code, const char *message);
void sesh_error_metatable(lua_State *L);

/* A handle's metatable (on top of the stack): __gc and __close call close
 * (it must be safe to call twice), __tostring calls tostring (NULL: none). */
void sesh_handle_methods(lua_State *L, lua_CFunction close, lua_CFunction tostring);

/* Functions of sessions.core defined beside what they belong to. */
int sesh_core_json_decode(lua_State *L);   /* ljson.c */
int sesh_core_sleep(lua_State *L);         /* lhttp.c */
int sesh_core_error(lua_State *L);         /* lerror.c */
int sesh_core_is_error(lua_State *L);      /* lerror.c */
void sesh_core_open_os(lua_State *L);      /* los.c: adds its functions to the table on top */

/* The progress bar (lprogress.c). asked: a request's progress option (-1 unsaid:
 * when stderr is a terminal). sesh_progress_draw is the transport's progress
 * hook (it clears the bar once no transfer reports progress). */
int sesh_progress_wanted(int asked);
void sesh_progress_draw(const sesh_http_progress_figures *p);

#endif
