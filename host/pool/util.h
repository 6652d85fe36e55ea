/*
 * util.h — small helpers the pool's files share: clocks, RFC 3339 times,
 * random identifiers, base64, percent decoding, constant-time compare,
 * memory files.
 * What the client has too (the clock, randomness, base64, printf) is
 * host/common's, given here the pool's policy: out of memory or of entropy
 * aborts, as every allocation of the pool does.
 */
#ifndef SESH_POOL_UTIL_H
#define SESH_POOL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t sesh_now_ms(void);                 /* monotonic milliseconds */

/* "2024-05-02T07:21:07.9922617Z" with `digits` fractional digits (0..9). */
void sesh_format_time(char out[48], struct timespec t, int digits);

/* Fills buf from the kernel's random source; 0 on success. */
int sesh_random_bytes(void *buf, size_t n);
void sesh_uuid(char out[37]);               /* random UUID v4, lower-case */
void sesh_random_hex(char *out, size_t nbytes);  /* 2*nbytes hex + NUL */

/* Decodes standard or URL-safe base64 (padding optional, whitespace skipped).
 * Returns a malloc'd buffer (NUL-terminated) or NULL when the input is not base64. */
char *sesh_base64_decode(const char *in, size_t len, size_t *outlen);

/* Standard base64 with padding, NUL-terminated and malloc'd; *outlen (when
 * not NULL) is its length. */
char *sesh_base64_encode(const void *in, size_t len, size_t *outlen);

/* Decodes %XX escapes in place (and '+' as space when plus_is_space).
 * Malformed escapes are kept literally. Returns the new length, which is
 * more than strlen(s) when a %00 was decoded: no caller may take such a
 * value as a C string (see sesh_percent_decode_text). */
size_t sesh_percent_decode(char *s, int plus_is_space);

/* Is s[0..n) well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF)? NUL bytes are well-formed: callers refuse them apart. */
int sesh_utf8_valid(const char *s, size_t n);

/* sesh_percent_decode, refusing a decoded NUL: 0, or -1 when the value
 * held one (a C string would end there, and name something else). */
int sesh_percent_decode_text(char *s, int plus_is_space);

/* Compares in time that depends only on the lengths: for secrets. */
int sesh_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

/* A memory file (close-on-exec) holding data, its offset at 0: what a child
 * reads (runner.py, the sandbox's accounts). -1 with errno. */
int sesh_memfd(const char *name, const void *data, size_t len);

/* Starts fn(arg) on a detached thread that takes no signal (the main thread
 * handles the pool's). 0, or an errno value. */
int sesh_thread_start(void *(*fn)(void *), void *arg);

/* malloc'd printf; aborts the process on out-of-memory like the rest of the
 * pool's allocators (xmalloc and friends). */
char *sesh_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *sesh_xvprintf(const char *fmt, va_list ap);
void *sesh_xmalloc(size_t n);
void *sesh_xcalloc(size_t n, size_t size);
void *sesh_xrealloc(void *p, size_t n);
char *sesh_xstrdup(const char *s);

#endif
