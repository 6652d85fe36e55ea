/*
 * common.h — the small helpers every sesh binary shares: one monotonic clock,
 * sleeping, random bytes and UUIDs, base64, printf to a new string, creating
 * directories, starting a program. This header is the piece's whole contract.
 *
 * Like Redis's anet.c and sds.c, the piece is compiled once and linked into
 * every binary (sesh, libsesh, sessions.so, sesh-pool; host/common/common.mk),
 * so no layer writes its own copy. It knows nothing of Lua, libcurl or HTTP,
 * and it never aborts: what allocates returns NULL on out of memory, what
 * calls the system returns -1 with errno, and each binary keeps its own policy
 * (the pool's x-allocators abort; the client reports).
 */
#ifndef SESH_COMMON_H
#define SESH_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- time: CLOCK_MONOTONIC, the one clock of every timeout and deadline ---- */

double sesh_monotonic(void);            /* seconds */
uint64_t sesh_monotonic_ms(void);       /* the same clock, whole milliseconds */

/* Sleeps `seconds` (<= 0: returns at once). A signal ends the sleep early:
 * -1 with errno EINTR, so that a caller can look for Ctrl-C; else 0. */
int sesh_sleep(double seconds);

/* ---- randomness: the kernel's (getrandom) ---- */

int sesh_random_fill(void *buf, size_t n);    /* 0, or -1 with errno */
int sesh_uuid4(char out[37]);                 /* random UUID v4, lower-case, NUL-ended; 0 or -1 */

/* ---- base64 (RFC 4648) ---- */

#define SESH_B64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
#define SESH_B64_DECODED_MAX(n) ((n) / 4 * 3 + 3)

/* Writes SESH_B64_ENCODED_LEN(n) characters (standard alphabet, padded, no NUL). */
size_t sesh_b64_encode(char *out, const void *in, size_t n);

/* Decodes the standard or the URL-safe alphabet; ASCII whitespace is skipped and
 * padding is optional. out must hold SESH_B64_DECODED_MAX(len) bytes. Returns
 * the decoded length, or -1 with *why ("bad character", "data after padding",
 * "truncated input") and *at (offset of the offending byte; len when truncated). */
ptrdiff_t sesh_b64_decode(unsigned char *out, const char *in, size_t len,
                          const char **why, size_t *at);

/* ---- strings ---- */

/* printf into a new string (free it); NULL on out of memory. */
char *sesh_strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *sesh_vstrprintf(const char *fmt, va_list ap);

/* ---- files ---- */

/* mkdir -p: path and any missing parent, each created with mode (the umask
 * applies). An existing directory is success. 0, or -1 with errno. */
int sesh_mkdirs(const char *path, mode_t mode);

/* ---- processes ---- */

typedef struct sesh_child {
    char *const *argv;          /* argv[0] is looked up in PATH */
    char *const *envp;          /* NULL: ours */
    int fd[3];                  /* put at the child's 0, 1, 2 where >= 0 (set -1 for none) */
    const char *path[3];        /* else opened there: 0 for reading, 1 and 2 appended to
                                   (created 0600); neither: the child has ours */
    const char *cwd;            /* NULL: ours */
    int new_group;              /* non-zero: a process group of its own */
} sesh_child;

/* Starts c (posix_spawn). The child has no descriptor of ours above stderr,
 * no blocked signal, and SIGINT, SIGPIPE and SIGTERM at their defaults.
 * 0 with *pid, or an errno value. */
int sesh_spawn_child(const sesh_child *c, pid_t *pid);

#endif
