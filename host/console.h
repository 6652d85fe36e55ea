/*
 * console.h — the interactive console of `sesh` (readline, history,
 * completion, pretty printing, Python mode) and what it shares with the
 * command line in sesh.c.
 */
#ifndef SESH_CONSOLE_H
#define SESH_CONSOLE_H

#include <lua.h>

/* Runs the console on L until end of input (Ctrl-D). */
void sesh_console(lua_State *L);

/* From sesh.c: calls the function below narg arguments with a traceback
 * handler and Ctrl-C interrupting it (lua.c's docall). */
int sesh_docall(lua_State *L, int narg, int nres);

/* From sesh.c: prints "progname: msg" on stderr. */
void sesh_message(const char *msg);

#endif
