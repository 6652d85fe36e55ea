/*
 * util.c — see util.h.
 */
#include "pool/util.h"
#include "common/common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

uint64_t sesh_now_ms(void)
{
    return sesh_monotonic_ms();
}

void sesh_format_time(char out[48], struct timespec t, int digits)
{
    struct tm tm;
    time_t secs = t.tv_sec;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits > 0) {
        char frac[16];
        snprintf(frac, sizeof frac, "%09ld", (long)t.tv_nsec);
        if (digits > 9) digits = 9;
        out[n++] = '.';
        memcpy(out + n, frac, (size_t)digits);
        n += (size_t)digits;
    }
    out[n++] = 'Z';
    out[n] = '\0';
}

int sesh_random_bytes(void *buf, size_t n)
{
    return sesh_random_fill(buf, n);
}

static void to_hex(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void sesh_random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    if (nbytes > sizeof b) nbytes = sizeof b;
    if (sesh_random_bytes(b, nbytes) != 0) abort();   /* no entropy: nothing is safe */
    to_hex(out, b, nbytes);
}

void sesh_uuid(char out[37])
{
    if (sesh_uuid4(out) != 0) abort();      /* no entropy: nothing is safe */
}

char *sesh_base64_decode(const char *in, size_t len, size_t *outlen)
{
    char *out = sesh_xmalloc(SESH_B64_DECODED_MAX(len) + 1);
    const char *why;
    size_t at;
    ptrdiff_t n = sesh_b64_decode((unsigned char *)out, in, len, &why, &at);
    if (n < 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *outlen = (size_t)n;
    return out;
}

char *sesh_base64_encode(const void *in, size_t len, size_t *outlen)
{
    size_t n = SESH_B64_ENCODED_LEN(len);
    char *out = sesh_xmalloc(n + 1);
    sesh_b64_encode(out, in, len);
    out[n] = '\0';
    if (outlen) *outlen = n;
    return out;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t sesh_percent_decode(char *s, int plus_is_space)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else if (*r == '+' && plus_is_space) {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

int sesh_percent_decode_text(char *s, int plus_is_space)
{
    return sesh_percent_decode(s, plus_is_space) == strlen(s) ? 0 : -1;
}

int sesh_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80) continue;
        int more;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) { more = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { more = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { more = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (end - p < more) return 0;
        while (more--) {
            if ((*p & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (*p++ & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    }
    return 1;
}

int sesh_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Every byte of the expected secret is looked at whatever the input. */
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        unsigned char x = alen ? (unsigned char)a[i % alen] : 0;
        diff |= (unsigned char)(x ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

static void out_of_memory(void)
{
    static const char msg[] = "sesh-pool: out of memory\n";
    fwrite(msg, 1, sizeof msg - 1, stderr);
    abort();
}

void *sesh_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory();
    return p;
}

void *sesh_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory();
    return p;
}

void *sesh_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) out_of_memory();
    return p;
}

char *sesh_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) out_of_memory();
    return p;
}

char *sesh_xvprintf(const char *fmt, va_list ap)
{
    char *s = sesh_vstrprintf(fmt, ap);
    if (!s) out_of_memory();
    return s;
}

char *sesh_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = sesh_xvprintf(fmt, ap);
    va_end(ap);
    return s;
}

int sesh_memfd(const char *name, const void *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int sesh_thread_start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);     /* the thread inherits it */
    rc = pthread_create(&t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}
