/*
 * binding.h — the Lua C modules of sesh. The host preloads them; sessions.so
 * exports them for stock lua5.4 (found by the all-in-one C loader).
 */
#ifndef SESH_BINDING_H
#define SESH_BINDING_H

#include <lua.h>

int luaopen_sessions_http(lua_State *L);   /* sessions.http: HTTP client over the transport */
int luaopen_sessions_core(lua_State *L);   /* sessions.core: base64, PNG header, UUID */
int luaopen_sessions_proc(lua_State *L);   /* sessions.proc: a child process with pipes (lproc.c) */

int sesh_core_json_decode(lua_State *L);   /* core.json_decode, in ljson.c */

#endif
