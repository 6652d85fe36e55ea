/*
 * mcp_shell.c — see mcp_shell.h. Shell sessions are not built yet: every
 * command is answered as unavailable, so the tool says so plainly.
 */
#include "pool/mcp_shell.h"
#include "pool/util.h"

sesh_mcp_shell_status sesh_mcp_shell_run(sesh_session *s, const sesh_mcp_shell_command *cmd,
                                         sesh_watch *watch, json_t **result, char **why)
{
    (void)s;
    (void)cmd;
    (void)watch;
    *result = NULL;
    *why = sesh_xstrdup("shell commands are not available yet in sesh-pool: run the command "
                        "from Python instead (runPythonCodeInRemoteEnvironment with "
                        "subprocess.run(..., shell=True, capture_output=True, text=True))");
    return SESH_MCP_SHELL_UNAVAILABLE;
}
