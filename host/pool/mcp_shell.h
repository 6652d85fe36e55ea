/*
 * mcp_shell.h — the one function runShellCommandInRemoteEnvironment needs
 * from the shell sessions (pool-api.md section 9): run a command in a
 * session, beside its Python, and say what came of it.
 *
 * The command runs in the session's shell, as the REST API's shell
 * executions do (runner.py's Shell), in Python pools and Shell pools alike.
 */
#ifndef SESH_POOL_MCP_SHELL_H
#define SESH_POOL_MCP_SHELL_H

#include <stddef.h>
#include <jansson.h>
#include "pool/sessions.h"

typedef struct sesh_mcp_shell_command {
    const char *shell_command;      /* shellCommand: a bash command line, or NULL */
    const char *const *argv;        /* execCommandAndArgs: argv[0..argc-1], or NULL */
    size_t argc;                    /* exactly one of shell_command and argv is given */
    int timeout_ms;                 /* at most this long, then interrupted (exit code -1) */
    size_t max_output;              /* characters kept of stdout and of stderr each */
} sesh_mcp_shell_command;

typedef enum {
    SESH_MCP_SHELL_OK = 0,          /* *result is filled (whatever the exit code) */
    SESH_MCP_SHELL_FAILED           /* the command could not be run at all; *why says why */
} sesh_mcp_shell_status;

/* Runs cmd in session s (acquired by the caller, in its /mnt/data, in
 * arrival order with the session's Python executions). watch: the waiting
 * client, as for sesh_session_execute (NULL: none); when it goes away the
 * command is interrupted.
 * On OK, *result is a new object
 *   {"stdout": string, "stderr": string, "exitCode": integer,
 *    "executionTimeInMilliseconds": integer}
 * with exitCode -1 when the command timed out or could not start (stderr
 * then says why, as Azure's errorName/errorMessage do). Otherwise *why is a
 * malloc'd sentence. */
sesh_mcp_shell_status sesh_mcp_shell_run(sesh_session *s, const sesh_mcp_shell_command *cmd,
                                         sesh_watch *watch, json_t **result, char **why);

#endif
