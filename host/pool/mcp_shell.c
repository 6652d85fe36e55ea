/*
 * mcp_shell.c — see mcp_shell.h. A command runs as the REST API's shell
 * executions do: the runner's "shell" op in the session's sandbox, through
 * the session manager, and its outcome is the REST API's (sesh_shell_outcome).
 */
#include "pool/mcp_shell.h"
#include "pool/api_ops.h"
#include "pool/util.h"

#include <string.h>

/* The runner's request for cmd (runner.py's "shell" op). */
static json_t *shell_request(const sesh_mcp_shell_command *cmd)
{
    json_t *rq = json_pack("{s:s, s:I}", "op", "shell", "max_output", (json_int_t)cmd->max_output);
    if (cmd->shell_command) {
        json_object_set_new(rq, "command", json_string(cmd->shell_command));
        return rq;
    }
    json_t *args = json_array();
    for (size_t i = 0; i < cmd->argc; i++)
        json_array_append_new(args, json_string(cmd->argv[i]));
    json_object_set_new(rq, "args", args);
    return rq;
}

static const char *busy_reason(sesh_sess_status st)
{
    switch (st) {
    case SESH_SESS_NOT_FOUND: return "the environment's session is gone";
    case SESH_SESS_BUSY: return "too many executions are waiting in this environment; try again later";
    case SESH_SESS_STOPPING: return "the pool is shutting down";
    default: return "the environment's session cannot run it";
    }
}

sesh_mcp_shell_status sesh_mcp_shell_run(sesh_session *s, const sesh_mcp_shell_command *cmd,
                                         sesh_watch *watch, json_t **result, char **why)
{
    *result = NULL;
    *why = NULL;
    json_t *rq = shell_request(cmd);
    sesh_run run;
    sesh_sess_status st = sesh_session_execute(s, rq, cmd->timeout_ms, NULL, watch, &run);
    json_decref(rq);
    if (st != SESH_SESS_OK) {
        *why = sesh_xstrdup(busy_reason(st));
        return SESH_MCP_SHELL_FAILED;
    }
    if (!run.started) {
        *why = sesh_printf("cannot start the environment's sandbox: %s",
                           run.error ? run.error : "unknown error");
        sesh_run_clear(&run);
        return SESH_MCP_SHELL_FAILED;
    }
    json_t *o = sesh_shell_outcome(&run);
    sesh_run_clear(&run);
    *result = json_pack("{s:O, s:O, s:O, s:O}", "stdout", json_object_get(o, "stdout"),
                        "stderr", json_object_get(o, "stderr"),
                        "exitCode", json_object_get(o, "exitCode"),
                        "executionTimeInMilliseconds", json_object_get(o, "ms"));
    json_decref(o);
    return SESH_MCP_SHELL_OK;
}
