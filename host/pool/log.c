/*
 * log.c — see log.h.
 */
#include "pool/log.h"
#include "pool/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void sesh_log(const char *fmt, ...)
{
    char line[2048];
    char when[48];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sesh_format_time(when, now, 3);
    static pid_t pid;           /* asked once: --daemon forks before any log line */
    if (!pid)
        pid = getpid();
    int n = snprintf(line, sizeof line, "%s sesh-pool[%d]: ", when, (int)pid);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    /* Nothing a client sent may forge a second log line. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
