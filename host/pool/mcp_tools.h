/*
 * mcp_tools.h — the MCP server's tools: their definitions (name, title,
 * description, input and output schemas, annotations) and what running one
 * does.
 *
 * A tool's outcome is a CallToolResult: its structuredContent (fitting the
 * tool's output schema), that JSON again as a text block, and images as
 * image blocks. What the tool could not do (code that failed, a missing
 * file, an unknown environment, a full pool) is a result with isError: true
 * and a text the model can act on; only calls that break the protocol (an
 * unknown tool, arguments of the wrong shape) are JSON-RPC errors.
 */
#ifndef SESH_POOL_MCP_TOOLS_H
#define SESH_POOL_MCP_TOOLS_H

#include <stdint.h>
#include <jansson.h>
#include "pool/mcp.h"
#include "pool/mcp_env.h"

#define SESH_MCP_INVALID_PARAMS (-32602)

/* One tools/call, as the transports hand it over. */
typedef struct sesh_mcp_tool_call {
    const sesh_mcp_config *cfg;
    sesh_mcp_envs *envs;
    uint64_t owner;             /* the MCP session launching environments (0: none) */
    sesh_watch *watch;          /* who waits for the result (NULL: not watched) */
    char log_session[9];        /* out: the first characters of the session's guid, for the log */
} sesh_mcp_tool_call;

/* The tools array of a tools/list answer. New reference. */
json_t *sesh_mcp_tools_list(void);

/* Runs tool `name` with `args` (an object; NULL is {}). Returns the
 * CallToolResult (new reference), or NULL with *rpc_message (malloc'd) when
 * the call is a JSON-RPC error (always Invalid params: an unknown tool or
 * arguments that do not fit). May block for the execution timeout. */
json_t *sesh_mcp_tools_call(sesh_mcp_tool_call *call, const char *name, json_t *args,
                            char **rpc_message);

#endif
