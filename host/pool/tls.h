/*
 * tls.h — the pool's TLS certificate: read from a certificate file (PEM: the
 * server's certificate first, then the chain up to its CA) and a key file
 * (PEM, unencrypted), handed to every TLS handshake libmicrohttpd makes,
 * and swapped for a new one when the files are read again (SIGHUP) with no
 * connection dropped: handshakes after the swap get the new one.
 *
 * A certificate is taken only whole: both files readable (1 MiB each at
 * most), PEM, a key that matches the certificate, and the certificate not
 * expired. A reload that fails any of these keeps the one in use and says
 * why; so does a first load, which fails the start.
 *
 * The certificate in use is the process's (GnuTLS's certificate callback
 * takes no argument of ours: one server per process). Each handshake gets a
 * copy of its own that GnuTLS frees with the connection, so a certificate
 * swapped out is freed at once, whoever still uses it.
 *
 * Threads: any; sesh_tls_retrieve may run on many at once.
 */
#ifndef SESH_POOL_TLS_H
#define SESH_POOL_TLS_H

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>

/* Reads cert_file and key_file and puts them in use: 0, or -1 with a
 * malloc'd *err. *about (malloc'd, may be NULL) says what was loaded:
 * "subject CN=..., valid until 2026-11-30 12:00:00 UTC". */
int sesh_tls_load(const char *cert_file, const char *key_file, char **about, char **err);

/* Reads the same files again: 0 when the new certificate is in use, -1
 * (with *err) when the one in use stays. *about as for sesh_tls_load. */
int sesh_tls_reload(char **about, char **err);

/* Forgets the certificate (after the server stopped). */
void sesh_tls_unload(void);

/* GnuTLS's certificate retrieve function (libmicrohttpd's
 * MHD_OPTION_HTTPS_CERT_CALLBACK2): a copy of the certificate in use. */
gnutls_certificate_retrieve_function3 sesh_tls_retrieve;

#endif
