/*
 * console.h — the interactive console of `sesh` (readline, history,
 * completion, pretty printing, Python mode).
 */
#ifndef SESH_CONSOLE_H
#define SESH_CONSOLE_H

#include "sesh.h"

/* Runs the console on the host's state until end of input (Ctrl-D). */
void sesh_console(sesh *S);

#endif
