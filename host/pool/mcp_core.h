/*
 * mcp_core.h — what the MCP transports (mcp_http.c, mcp_stdio.c) share with
 * the JSON-RPC core (mcp.c): the server's state, MCP sessions, and the
 * handling of one message. Internal to the MCP server.
 *
 * An MCP session is what an initialize starts: its negotiated protocol
 * version, the environments it launched (mcp_env.h, by its serial number)
 * and its tool calls in flight, which a notifications/cancelled can stop.
 * Sessions are counted references: the registry holds them until they end
 * (DELETE, end of stdin, or idle past the cooldown with nothing running),
 * and each request holds one while it runs.
 */
#ifndef SESH_POOL_MCP_CORE_H
#define SESH_POOL_MCP_CORE_H

#include <pthread.h>
#include <stdint.h>
#include <jansson.h>
#include "pool/mcp.h"
#include "pool/mcp_env.h"

#define SESH_MCP_LATEST  "2025-06-18"
#define SESH_MCP_OLDEST  "2025-03-26"   /* also what HTTP requests without a version header speak */
#define SESH_MCP_MAX_SESSIONS 1024      /* MCP sessions held at once */
#define SESH_MCP_MAX_BATCH 256          /* messages in one batch (2025-03-26) */

/* JSON-RPC error codes. */
#define SESH_MCP_PARSE_ERROR      (-32700)
#define SESH_MCP_INVALID_REQUEST  (-32600)
#define SESH_MCP_METHOD_NOT_FOUND (-32601)
/* SESH_MCP_INVALID_PARAMS (-32602) is in mcp_tools.h */
#define SESH_MCP_SERVER_ERROR     (-32000) /* a request the transport refuses, as the SDKs say it */
#define SESH_MCP_NO_SESSION       (-32001)

typedef struct sesh_mcp_session sesh_mcp_session;

struct sesh_mcp {
    sesh_mcp_config cfg;        /* key and allowed_origins point at the copies below */
    char *key;
    char **origins;
    sesh_mcp_envs *envs;
    pthread_mutex_t mu;         /* sessions, and each session's fields */
    sesh_mcp_session *sessions;
    size_t nsessions;
    uint64_t next_serial;
};

/* The version string of ours that `v` names, or NULL when we do not speak it. */
const char *sesh_mcp_supported_version(const char *v);

/* A new MCP session (stdio: never expires), referenced once for the caller;
 * NULL when SESH_MCP_MAX_SESSIONS are held and none is idle enough to drop. */
sesh_mcp_session *sesh_mcp_session_new(sesh_mcp *mcp, int stdio);
/* The live session of an id, referenced; NULL when unknown or ended. */
sesh_mcp_session *sesh_mcp_session_find(sesh_mcp *mcp, const char *id);
void sesh_mcp_session_release(sesh_mcp *mcp, sesh_mcp_session *s);
/* Ends a session: the registry forgets it, its calls in flight are cancelled
 * (their answers dropped), its environments deleted. The caller's reference
 * stays. Ending twice is harmless. */
void sesh_mcp_session_end(sesh_mcp *mcp, sesh_mcp_session *s);
const char *sesh_mcp_session_id(const sesh_mcp_session *s);       /* 32 hex digits */
/* The negotiated protocol version, or `dflt` before initialize. */
const char *sesh_mcp_session_version(sesh_mcp *mcp, sesh_mcp_session *s, const char *dflt);

/* Handles one parsed message of session s (NULL: a stateless HTTP request)
 * spoken in protocol `version`: a request, a notification, a response, or
 * (2025-03-26 only) a batch of them. Returns the answer (a response, or an
 * array of them for a batch; new reference), or NULL when none is due.
 * client: the HTTP connection to watch while a tool runs; NULL on stdio,
 * where a notifications/cancelled stops the call instead. */
json_t *sesh_mcp_handle(sesh_mcp *mcp, sesh_mcp_session *s, json_t *msg, const char *version,
                        sesh_watch *client);

/* Whether handling msg may take long (a tools/call, a batch), so the stdio
 * transport gives it a thread. */
int sesh_mcp_is_slow(json_t *msg);

/* A JSON-RPC error response for id (NULL: null). New reference. */
json_t *sesh_mcp_error(json_t *id, int code, const char *message);

#endif
