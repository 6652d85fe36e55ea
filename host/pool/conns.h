/*
 * conns.h — the server's table of client connections: how many each client
 * address holds, which have shown the token, and the deadlines of requests
 * that arrive too slowly. A sweeper thread cuts connections past their
 * deadline; connections that never showed the token are let go first when
 * the server nears its connection limit or a client address its bound.
 *
 * Deadlines (libmicrohttpd's own timeout only counts idle time, so a byte
 * now and then would hold a socket for ever):
 *   - the first request's line and headers must be complete header_timeout
 *     after the connection opened; a later one's keepalive_timeout after the
 *     previous answer was sent (so an idle kept-alive connection lasts as
 *     long as libmicrohttpd's idle timeout lets it);
 *   - a body must keep an average of min_body_rate bytes a second after a
 *     grace of header_timeout: at time t after the headers, at least
 *     (t - header_timeout) * min_body_rate bytes must be in. For a body of
 *     known size that is also a deadline growing with its size. Time the
 *     server spends on a request (sesh_conn_pause) does not count.
 * A connection is cut with shutdown(2), never close(2): the descriptor stays
 * the server's, which notices the end and closes it; the client sees the
 * connection end without an answer. Cutting happens under the table's lock,
 * and the server removes a connection (sesh_conns_close) before it closes
 * its descriptor, so a descriptor cut is never one reused since.
 *
 * Client addresses: an IPv4 address, an IPv6 /64 (one host's usual share);
 * clients of a unix socket share one address and have no bound of their own.
 *
 * Thread rules: every function may be called from any thread; the calls
 * about one connection come in its order (the server's event loop, or the
 * worker that holds the connection suspended).
 */
#ifndef SESH_POOL_CONNS_H
#define SESH_POOL_CONNS_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct sesh_conns sesh_conns;
typedef struct sesh_conn sesh_conn;

typedef struct sesh_conns_config {
    int max_connections;        /* the server's own limit: letting go starts below it */
    int max_per_client;         /* connections one client address may hold; 0: no bound */
    int header_timeout_ms;
    int keepalive_timeout_ms;
    int min_body_rate;          /* bytes a second; 0: no body deadline */
} sesh_conns_config;

/* Starts the sweeper. NULL with a malloc'd *err when it cannot. */
sesh_conns *sesh_conns_new(const sesh_conns_config *cfg, char **err);
/* Stops the sweeper and frees the table; every connection must be closed. */
void sesh_conns_free(sesh_conns *t);

/* Whether to accept a connection from addr: 0 when its client address
 * holds its bound and none of those connections may be let go. Lets go of
 * connections that never showed the token (those opened or last answered
 * longest ago first) to make room, for the address or, near the limit, for
 * the server. */
int sesh_conns_admit(sesh_conns *t, const struct sockaddr *addr, socklen_t len);

/* A connection accepted (fd: its socket; addr as accepted); never NULL. */
sesh_conn *sesh_conns_open(sesh_conns *t, int fd, const struct sockaddr *addr);
/* The server is about to close c's descriptor: c is freed. */
void sesh_conns_close(sesh_conns *t, sesh_conn *c);

/* A request's headers are complete. authenticated: it carried the token
 * (the connection is then never let go early); body: a body follows. */
void sesh_conn_headers_done(sesh_conn *c, int authenticated, int body);
void sesh_conn_body(sesh_conn *c, size_t n);        /* n bytes of the body arrived */
void sesh_conn_pause(sesh_conn *c);                 /* the server works on the request: no deadline */
void sesh_conn_resume_body(sesh_conn *c);           /* ... and waits for more of its body */
void sesh_conn_done(sesh_conn *c);                  /* answered: the next request's headers are due */

#endif
