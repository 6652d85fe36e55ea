/*
 * tls.c — see tls.h.
 *
 * What is kept is the files' PEM text, checked once when read (GnuTLS's own
 * loading does the parsing and the key-certificate match); each handshake
 * imports its copy from that text (tens of microseconds beside the
 * handshake's milliseconds). The lock is held while a copy is made, so a
 * reload frees the text it replaced as soon as it swapped it.
 */
#include "pool/tls.h"
#include "pool/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/x509.h>

#define FILE_MAX (1u << 20)     /* bytes of a certificate or key file */
#define CHAIN_MAX 16            /* certificates in the chain, the server's included */

typedef struct cert {
    gnutls_datum_t chain;       /* PEM, NUL-terminated (malloc'd) */
    gnutls_datum_t key;         /* PEM, NUL-terminated (malloc'd) */
    unsigned ncerts;
} cert;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static cert *in_use;
static char *cert_path, *key_path;

static void cert_free(cert *c)
{
    if (!c) return;
    if (c->key.data) {
        memset(c->key.data, 0, c->key.size);   /* the key leaves no copy behind */
        free(c->key.data);
    }
    free(c->chain.data);
    free(c);
}

/* A whole file, at most FILE_MAX bytes, NUL-terminated. 0, or -1 with *err. */
static int read_file(const char *path, const char *what, gnutls_datum_t *out, char **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        *err = sesh_printf("cannot read the %s file %s: %s", what, path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        *err = sesh_printf("the %s file %s is %s", what, path,
                           S_ISREG(st.st_mode) ? "over 1 MiB" : "not a regular file");
        close(fd);
        return -1;
    }
    unsigned char *buf = sesh_xmalloc((size_t)st.st_size + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) {
                *err = sesh_printf("cannot read the %s file %s: %s", what, path, strerror(errno));
                free(buf);
                close(fd);
                return -1;
            }
            break;
        }
        n += (size_t)r;
        if (n > (size_t)st.st_size) {           /* it grew while read: take it next time */
            *err = sesh_printf("the %s file %s changed while it was read", what, path);
            free(buf);
            close(fd);
            return -1;
        }
    }
    close(fd);
    buf[n] = '\0';
    out->data = buf;
    out->size = (unsigned)n;
    return 0;
}

/* "subject ..., valid until ..." of the chain's first certificate; -1 with
 * *err when it has expired. */
static int describe(const gnutls_datum_t *chain, char **about, char **err)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) {
        *err = sesh_xstrdup("out of memory");
        return -1;
    }
    int rc = gnutls_x509_crt_import(crt, chain, GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        *err = sesh_printf("the certificate cannot be read: %s", gnutls_strerror(rc));
        gnutls_x509_crt_deinit(crt);
        return -1;
    }
    gnutls_datum_t dn = { NULL, 0 };
    gnutls_x509_crt_get_dn3(crt, &dn, 0);
    time_t until = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    char when[64] = "?";
    struct tm tm;
    if (until != (time_t)-1 && gmtime_r(&until, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    int expired = until != (time_t)-1 && until < time(NULL);
    if (expired)
        *err = sesh_printf("the certificate (subject %s) expired on %s", dn.data ? (char *)dn.data : "?", when);
    else if (about)
        *about = sesh_printf("subject %s, valid until %s", dn.data ? (char *)dn.data : "?", when);
    gnutls_free(dn.data);
    return expired ? -1 : 0;
}

/* Reads and checks the files. NULL with *err when they cannot be used. */
static cert *cert_read(const char *cert_file, const char *key_file, char **about, char **err)
{
    cert *c = sesh_xcalloc(1, sizeof *c);
    if (read_file(cert_file, "certificate", &c->chain, err) != 0 ||
        read_file(key_file, "key", &c->key, err) != 0) {
        cert_free(c);
        return NULL;
    }
    /* GnuTLS's own loading: PEM, the chain in order, a key that matches. */
    gnutls_certificate_credentials_t check;
    int rc = gnutls_certificate_allocate_credentials(&check);
    if (rc >= 0) {
        rc = gnutls_certificate_set_x509_key_mem2(check, &c->chain, &c->key, GNUTLS_X509_FMT_PEM, NULL, 0);
        gnutls_certificate_free_credentials(check);
    }
    gnutls_pcert_st pcerts[CHAIN_MAX];
    unsigned n = CHAIN_MAX;
    if (rc >= 0) {
        rc = gnutls_pcert_list_import_x509_raw(pcerts, &n, &c->chain, GNUTLS_X509_FMT_PEM, 0);
        if (rc >= 0)
            for (unsigned i = 0; i < n; i++) gnutls_pcert_deinit(&pcerts[i]);
    }
    if (rc < 0) {
        *err = sesh_printf("%s and %s do not make a certificate with its key: %s%s", cert_file, key_file,
                           gnutls_strerror(rc), rc == GNUTLS_E_SHORT_MEMORY_BUFFER ?
                           " (more than 16 certificates in the chain)" : "");
        cert_free(c);
        return NULL;
    }
    c->ncerts = n;
    if (describe(&c->chain, about, err) != 0) {
        cert_free(c);
        return NULL;
    }
    return c;
}

static int put_in_use(const char *cert_file, const char *key_file, char **about, char **err)
{
    cert *c = cert_read(cert_file, key_file, about, err);
    if (!c) return -1;
    pthread_mutex_lock(&mu);
    cert *old = in_use;
    in_use = c;
    pthread_mutex_unlock(&mu);
    cert_free(old);
    return 0;
}

int sesh_tls_load(const char *cert_file, const char *key_file, char **about, char **err)
{
    if (about) *about = NULL;
    if (put_in_use(cert_file, key_file, about, err) != 0) return -1;
    free(cert_path);
    free(key_path);
    cert_path = sesh_xstrdup(cert_file);
    key_path = sesh_xstrdup(key_file);
    return 0;
}

int sesh_tls_reload(char **about, char **err)
{
    if (about) *about = NULL;
    if (!cert_path) {
        *err = sesh_xstrdup("no certificate was loaded");
        return -1;
    }
    return put_in_use(cert_path, key_path, about, err);
}

void sesh_tls_unload(void)
{
    pthread_mutex_lock(&mu);
    cert *old = in_use;
    in_use = NULL;
    pthread_mutex_unlock(&mu);
    cert_free(old);
    free(cert_path);
    free(key_path);
    cert_path = key_path = NULL;
}

int sesh_tls_retrieve(gnutls_session_t session, const struct gnutls_cert_retr_st *info,
                      gnutls_pcert_st **certs, unsigned int *ncerts, gnutls_ocsp_data_st **ocsp,
                      unsigned int *nocsp, gnutls_privkey_t *key, unsigned int *flags)
{
    (void)session;
    (void)info;
    *certs = NULL;
    *ncerts = 0;
    *ocsp = NULL;
    *nocsp = 0;
    *key = NULL;
    *flags = GNUTLS_CERT_RETR_DEINIT_ALL;      /* GnuTLS frees the copies with the session */
    gnutls_pcert_st *list = NULL;
    gnutls_privkey_t pk = NULL;
    unsigned n = 0;
    int rc = -1;
    pthread_mutex_lock(&mu);
    if (in_use && (list = gnutls_malloc(in_use->ncerts * sizeof *list)) != NULL &&
        gnutls_privkey_init(&pk) >= 0) {
        n = in_use->ncerts;
        if (gnutls_pcert_list_import_x509_raw(list, &n, &in_use->chain, GNUTLS_X509_FMT_PEM, 0) < 0) {
            n = 0;
        } else if (gnutls_privkey_import_x509_raw(pk, &in_use->key, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0) {
            rc = 0;
        }
    }
    pthread_mutex_unlock(&mu);
    if (rc != 0) {                              /* no certificate: the handshake fails */
        for (unsigned i = 0; i < n; i++) gnutls_pcert_deinit(&list[i]);
        gnutls_free(list);
        if (pk) gnutls_privkey_deinit(pk);
        return -1;
    }
    *certs = list;
    *ncerts = n;
    *key = pk;
    return 0;
}
