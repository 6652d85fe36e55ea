/*
 * server.h — the HTTP side of sesh-pool: libmicrohttpd on a listening socket
 * made by the caller (TCP or unix), bearer-token check, body intake (JSON
 * bodies buffered up to a cap, multipart uploads streamed to disk), replies,
 * and one access log line per request.
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION). An execution
 * blocks its caller for up to the timeout (220 s), and several sessions must
 * run at once; a thread per connection lets each handler simply wait, while
 * an event loop would need every operation written as a state machine. The
 * connection limit bounds the threads, and the idle timeout drops clients
 * that stall.
 */
#ifndef SESH_POOL_SERVER_H
#define SESH_POOL_SERVER_H

#include "pool/api.h"

typedef struct sesh_server sesh_server;

typedef struct sesh_server_config {
    int listen_fd;              /* bound and listening */
    const char *token;          /* the bearer token every call but /health needs */
    int max_connections;
    int idle_timeout;           /* seconds without a byte from the client */
} sesh_server_config;

sesh_server *sesh_server_start(const sesh_server_config *cfg, sesh_api *api, char **err);
void sesh_server_stop(sesh_server *srv);    /* closes connections, joins threads, frees */

#endif
