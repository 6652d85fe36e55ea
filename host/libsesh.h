/*
 * libsesh.h — what libsesh gives the sesh executable beyond the embedding API
 * of sesh.h: the runner the command line (sesh.c) and the console (console.c)
 * share. Internal: not installed, not exported by libsesh.so.
 */
#ifndef SESH_LIBSESH_H
#define SESH_LIBSESH_H

#include "sesh.h"

/* lua.c's docall on the host's state: sesh_pcall (a traceback on error) with
 * Ctrl-C interrupting the call (sesh_interrupt). A second Ctrl-C before the
 * first took effect kills the process, as it kills lua, unless `console` is
 * set: then it interrupts again, and the console survives. The function and
 * its narg arguments on top, as for lua_pcall. */
int sesh_run(sesh *S, int narg, int nres, int console);

#endif
