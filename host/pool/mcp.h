/*
 * mcp.h — sesh-pool's Model Context Protocol server (pool-api.md section 10,
 * MCP specification 2025-03-26 and 2025-06-18).
 *
 * The tools of Azure's platform-managed MCP server (launchShell,
 * runPythonCodeInRemoteEnvironment, runShellCommandInRemoteEnvironment) and
 * sesh's own (uploadFile, downloadFile, listFiles, closeEnvironment), over
 * two transports:
 *
 * - streamable HTTP: the HTTP server hands every request for the path /mcp
 *   to sesh_mcp_http(), which answers with a status, headers and a JSON body
 *   (or none). The MCP key (x-ms-apikey, or Authorization: Bearer <key>)
 *   guards it, never the REST API's token.
 * - stdio: sesh_mcp_stdio() reads JSON-RPC messages one per line and writes
 *   the answers one per line (sesh-pool --mcp-stdio).
 *
 * An environment (launchShell) is a session of the pool whose identifier is
 * the environmentId; its session is allocated at first use, counts against
 * the pool's maximum, ends at the cooldown like any session, and is deleted
 * when the MCP session that launched it ends (DELETE /mcp, end of stdin).
 * Requests over HTTP without Mcp-Session-Id are served statelessly; their
 * environments belong to no MCP session and end at the cooldown.
 *
 * Threads: every function may be called from any thread, concurrently.
 */
#ifndef SESH_POOL_MCP_H
#define SESH_POOL_MCP_H

#include <stddef.h>
#include <stdint.h>
#include "pool/api.h"
#include "pool/sessions.h"

/* A message (a request body, a line of stdin) is at most this long. */
#define SESH_MCP_MAX_MESSAGE SESH_MAX_JSON_BODY

typedef struct sesh_mcp sesh_mcp;

typedef struct sesh_mcp_config {
    sesh_manager *manager;
    const char *key;                    /* HTTP: the MCP key (NULL: HTTP refuses everyone) */
    const char *const *allowed_origins; /* NULL-terminated, or NULL; "*" allows any Origin */
    int timeout;                        /* seconds an execution may run (the pool's --timeout) */
    size_t max_output;                  /* characters of stdout and stderr per execution */
    uint64_t max_file;                  /* bytes of a file uploadFile or downloadFile moves */
    uint64_t min_free_disk;             /* free bytes the pool's disk keeps (--min-free-disk) */
    int cooldown;                       /* seconds after which an idle MCP session ends */
    int max_environments;               /* launched and not yet ended (the pool's --max-sessions) */
} sesh_mcp_config;

sesh_mcp *sesh_mcp_new(const sesh_mcp_config *cfg);
/* Ends every MCP session, deleting the environments they launched. Before
 * sesh_manager_free(), after the transports stopped calling in. */
void sesh_mcp_free(sesh_mcp *mcp);

/* One HTTP request to the MCP endpoint, as the server read it. Header values
 * are NULL when absent. */
typedef struct sesh_mcp_http_request {
    const char *method;                 /* "POST", "GET", "DELETE", ... */
    const char *api_key;                /* x-ms-apikey */
    const char *authorization;          /* Authorization */
    const char *origin;                 /* Origin */
    const char *session_id;             /* Mcp-Session-Id */
    const char *protocol_version;       /* MCP-Protocol-Version */
    const char *accept;                 /* Accept */
    const char *content_type;           /* Content-Type */
    const char *body;                   /* the whole body (POST); need not be NUL-terminated */
    size_t body_len;
    sesh_watch *client;                 /* the connection while a tool runs (NULL: not watched) */
} sesh_mcp_http_request;

/* The checks sesh_mcp_http() makes before it reads a body: the Origin, the
 * key, then the body's size (body_len: as announced, or as much as arrived;
 * the body itself is not read), for the server to make as soon as the
 * headers are in and as a body of unknown size grows: 0 when the request
 * may go on, else -1 with the refusal (403, 401, 413) in reply. Never blocks. */
int sesh_mcp_http_admit(sesh_mcp *mcp, const sesh_mcp_http_request *rq, sesh_reply *reply);

/* Answers one request: reply gets the status (200, 202, 400, 401, 403, 404,
 * 405, 406, 413, 415, 429, 503), headers (Mcp-Session-Id, Allow) and a JSON
 * body (reply->json) or none (202 and DELETE). A POST may run a tool, and so
 * block for up to the execution timeout: call it where blocking is allowed. */
void sesh_mcp_http(sesh_mcp *mcp, const sesh_mcp_http_request *rq, sesh_reply *reply);

/* The stdio transport: serves one MCP session on in_fd/out_fd until in_fd
 * reaches its end or stop_fd (when >= 0) becomes readable; then deletes the
 * session's environments and returns 0 (-1 when out_fd broke first). Tool
 * calls run in threads of their own, so pings and cancellations are answered
 * while code runs. */
int sesh_mcp_stdio(sesh_mcp *mcp, int in_fd, int out_fd, int stop_fd);

#endif
