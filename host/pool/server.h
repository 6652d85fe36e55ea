/*
 * server.h — the HTTP side of sesh-pool: libmicrohttpd on a listening socket
 * made by the caller (TCP or unix), HTTP or HTTPS (tls.h), bearer-token
 * check, body intake (JSON bodies buffered up to a cap, multipart uploads
 * streamed to disk through the API's own parser), /mcp handed to the MCP
 * server (its own key, mcp.h), replies, and one access log line per request.
 *
 * Threads: one event loop (libmicrohttpd's epoll mode, run by the pool's own
 * threads in turn, workers.h) reads and writes every connection, so an idle
 * or slow socket costs a little memory, never a thread. What may block runs
 * on a pool thread while its connection is suspended, then resumes it: the
 * operation of every request but /health (an execution waits for its code
 * for up to the timeout; others wait for a session's lock or the disk; an
 * MCP tool call runs code too), on the very thread that read the request
 * (which keeps the loop meanwhile when nothing else runs, a standby thread
 * watching it), and the writes of an upload's pieces. Headers, token checks,
 * JSON bodies and error answers stay on the loop: sesh_call_parse,
 * sesh_api_begin and sesh_mcp_http_admit must stay quick. While a thread
 * runs code for a request it watches the request's socket itself
 * (sesh_watch), which the suspended loop leaves be; an interim answer it
 * sends goes through the connection's TLS session, if any.
 *
 * Limits and deadlines (conns.h): at most max_connections at once, and
 * max_per_client from one client address; requests whose headers (a TLS
 * handshake included) or body arrive too slowly are cut; near a limit,
 * connections that never showed the token (or the MCP key) are let go
 * first, so clients that have it keep getting in.
 */
#ifndef SESH_POOL_SERVER_H
#define SESH_POOL_SERVER_H

#include "pool/api.h"
#include "pool/mcp.h"

typedef struct sesh_server sesh_server;

typedef struct sesh_server_config {
    int listen_fd;              /* bound and listening */
    const char *token;          /* the bearer token every call but /health needs */
    int max_connections;
    int max_per_client;         /* connections from one client address; 0: no bound */
    int idle_timeout;           /* seconds without a byte from the client */
    int header_timeout;         /* seconds for a new connection's request headers */
    int min_body_rate;          /* bytes/s a body must average after header_timeout; 0: none */
    int max_workers;            /* operations running at once; more wait for a worker */
    sesh_mcp *mcp;              /* serves /mcp (its own key, not the token); NULL: no /mcp */
    const char *tls_cert;       /* HTTPS with this certificate (PEM, chain after it); NULL: HTTP */
    const char *tls_key;        /* ... and its key (PEM, unencrypted) */
} sesh_server_config;

sesh_server *sesh_server_start(const sesh_server_config *cfg, sesh_api *api, char **err);
/* Waits for the operations running (stop the session manager first, so
 * executions end), closes connections, joins threads, frees. */
void sesh_server_stop(sesh_server *srv);
/* Reads the certificate and key files again (SIGHUP): connections made from
 * then on get the new certificate, those open keep theirs; a new one that
 * cannot be used (tls.h) leaves the one in use. Says which in the log. */
void sesh_server_reload_tls(sesh_server *srv);

#endif
