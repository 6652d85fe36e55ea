/*
 * listen.h — the pool's listening socket, TCP or unix (as Redis's anet.c):
 * bound, listening, close-on-exec.
 */
#ifndef SESH_POOL_LISTEN_H
#define SESH_POOL_LISTEN_H

/* Listens on spec, "HOST:PORT" (NULL: 127.0.0.1 and a free port; "[v6]:PORT"
 * too). An address beyond loopback is refused unless have_token_file (the
 * token that guards it must be one the user chose to share). The socket,
 * with *address ("http://HOST:PORT", malloc'd) and *loopback; or -1 with *err. */
int sesh_listen_tcp(const char *spec, int have_token_file, char **address, int *loopback, char **err);

/* Listens on the unix socket path, born 0600. A socket left there by a pool
 * that died is replaced; one that answers, or a file that is not a socket, is
 * an error. The socket, or -1 with *err. */
int sesh_listen_unix(const char *path, char **err);

#endif
