/*
 * api_ops.h — what api.c (dispatch, sessions, pool) shares with
 * api_exec.c (executions) and api_files.c (files), and, of the executions,
 * what the MCP server (mcp_tools.c) answers the same way. Internal to the pool.
 */
#ifndef SESH_POOL_API_OPS_H
#define SESH_POOL_API_OPS_H

#include "pool/api.h"

struct sesh_api {
    sesh_manager *m;
    sesh_api_config cfg;
    struct timespec started;
};

/* Puts the session of call->identifier in call->session (creating it when
 * `create`); 0, or -1 with the error in reply. */
int sesh_api_session(sesh_api *api, sesh_call *call, int create, sesh_reply *reply);
void sesh_api_session_error(sesh_api *api, sesh_reply *reply, sesh_sess_status st, const char *msg);

/* An absolute URL to an operation path under this pool, for Location-like
 * headers and nextLink; extra_query is appended after the identifier. */
char *sesh_api_url(const sesh_call *call, const char *op_path, const char *extra_query);
char *sesh_url_encode(const char *s);

/* An execution's outcome as {status ("Success" | "Failure"), stdout, stderr,
 * result, ms}: the runner's reply with the pool's notes on timeouts, lost
 * state and truncated output. run must have started. New reference. */
json_t *sesh_run_outcome(const sesh_run *run);

/* A shell command's outcome as {exitCode (-1 when it has none of its own),
 * stdout, stderr, ms} and, when it did not end by itself, error {code,
 * message} (ExecutionTimeout, ExecutionAbandoned, SessionStateLost,
 * ExecutionStopped, CommandStartError): the runner's reply with the pool's
 * notes on timeouts, shells that ended and truncated output. run must have
 * started. New reference. */
json_t *sesh_shell_outcome(const sesh_run *run);

void sesh_op_execute(sesh_api *api, sesh_call *call, const char *body, size_t len, sesh_reply *reply);
void sesh_op_exec_get(sesh_api *api, sesh_call *call, sesh_reply *reply);

void sesh_op_list(sesh_api *api, sesh_call *call, sesh_reply *reply);
void sesh_op_file_get(sesh_api *api, sesh_call *call, sesh_reply *reply);
void sesh_op_file_delete(sesh_api *api, sesh_call *call, sesh_reply *reply);
void sesh_op_download(sesh_api *api, sesh_call *call, sesh_reply *reply);
#define SESH_MULTIPART_FRAMING 65536    /* bytes of an upload's body that may be framing, not file */

/* 0 when n more bytes may be written into session s (taken from its quota,
 * quota.h, when `take`) within its disk limit (--max-disk) and the pool's
 * free-space floor (min_free bytes, --min-free-disk), else -1 with the error
 * in reply (413 or 507). done: bytes the upload already wrote, for the message.
 * The REST uploads and the MCP server's uploadFile share it. */
int sesh_session_disk_room(sesh_session *s, uint64_t min_free, uint64_t n, int take,
                           uint64_t done, sesh_reply *reply);
/* Before an upload's body is read: 0 when the size its body announces fits
 * the session's disk limit and the pool's free space, else -1 with the
 * error in reply (413 or 507). */
int sesh_op_upload_room(sesh_api *api, sesh_call *call, sesh_reply *reply);
int sesh_op_upload_data(sesh_api *api, sesh_call *call, const char *filename,
                        const char *data, uint64_t off, size_t size, sesh_reply *reply);
int sesh_op_upload_body(sesh_api *api, sesh_call *call, const char *data, size_t size, sesh_reply *reply);
void sesh_op_upload_finish(sesh_api *api, sesh_call *call, sesh_reply *reply);
void sesh_op_upload_body_free(sesh_call *call);

#endif
